"""localtgi: a server that speaks TGI v3.3.x's HTTP API, for local development and tests."""
