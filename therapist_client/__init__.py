"""A client of the therapist endpoint's /stream_chat contract that checks every event as it arrives
and times the stream. Used by scripts/test_streaming_client.py (the guide's smoke test) and by the
Modal recipe's `modal run` check. Depends on httpx only: nothing of the server."""

from therapist_client.stream_chat import (
    ContractViolation,
    StreamReport,
    check_event,
    print_summary,
    stream_chat,
    stream_url,
)

__all__ = ["ContractViolation", "StreamReport", "check_event", "print_summary", "stream_chat", "stream_url"]
