"""The user's guide's face: POST /stream_chat and its SSE (protocol, framing, router)."""
