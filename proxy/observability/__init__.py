"""Watching the proxy: metrics, each request's context and stream record, JSON logs, and health."""
