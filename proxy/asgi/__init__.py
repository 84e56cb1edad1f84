"""ASGI plumbing the faces share: the middleware (request log, CORS, API keys, body size), the fast
path for streaming routes, the SSE response, reading JSON bodies, and errors as responses."""
