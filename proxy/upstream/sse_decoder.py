"""Read server-sent events from bytes: a pure decoder (bytes in, event data out), no I/O.

The event-stream rules of the HTML spec, exactly as httpx-sse (the proxy's earlier reader) applies
them: lines end in \\r\\n, \\r or \\n; a comment line starts with `:`; one space after a field's
colon is dropped; `data` lines of one event are joined with \\n; a blank line dispatches the event
when any field was set, and `id` (never reset) counts as set. Only each event's data comes out:
TGI names no event types, and the proxy reads nothing else.
"""

from __future__ import annotations

_CR, _LF = b"\r", b"\n"


class EventStreamDecoder:
    """Feed it the body as it arrives; it returns the data of each event completed so far.

    Lines are split on bytes and then decoded, which reads the same as decoding first for any
    ASCII-compatible `encoding` (UTF-8 is what the SSE spec prescribes).
    """

    def __init__(self, encoding: str = "utf-8") -> None:
        self._encoding = encoding
        self._partial = b""  # the start of a line whose end has not arrived yet
        self._trailing_cr = False  # the last chunk ended in \r, perhaps the first half of \r\n
        self._data: list[str] = []
        self._event = ""
        self._retry: int | None = None
        self._last_event_id = ""

    def feed(self, chunk: bytes) -> list[str]:
        if self._trailing_cr:
            chunk = _CR + chunk
            self._trailing_cr = False
        if chunk.endswith(_CR):
            self._trailing_cr = True
            chunk = chunk[:-1]
        if self._partial:
            chunk = self._partial + chunk
        if _CR in chunk:
            chunk = chunk.replace(b"\r\n", _LF).replace(_CR, _LF)
        lines = chunk.split(_LF)
        self._partial = lines.pop()
        return self._read_lines(lines)

    def close(self) -> list[str]:
        """At the end of the body, an unterminated last line is still read (a lone \\r at the very end
        makes a blank line, which may dispatch an event)."""
        if not self._partial and not self._trailing_cr:
            return []
        line, self._partial, self._trailing_cr = self._partial, b"", False
        return self._read_lines([line])

    def _read_lines(self, lines: list[bytes]) -> list[str]:
        events: list[str] = []
        for line in lines:
            if not line:
                if self._data or self._event or self._last_event_id or self._retry is not None:
                    events.append("\n".join(self._data))
                    self._data, self._event, self._retry = [], "", None
            elif line.startswith(b"data:"):  # nearly every line: read it without the general field split
                value = line[6:] if line.startswith(b" ", 5) else line[5:]
                self._data.append(value.decode(self._encoding, "replace"))
            elif not line.startswith(b":"):  # a comment otherwise
                self._read_field(line.decode(self._encoding, "replace"))
        return events

    def _read_field(self, line: str) -> None:
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_event_id = value
        elif name == "retry":
            try:
                self._retry = int(value)
            except ValueError:
                pass
