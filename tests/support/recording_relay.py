"""A TCP hop in front of a server that keeps every HTTP request passing through it: what the proxy
really sent upstream, to compare across routes."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
from typing import Iterator
from urllib.parse import urlsplit


class RecordingRelay:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._streams: list[list[tuple[int, bytes]]] = []  # what each client connection sent: (order, bytes)
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed: the relay is shutting down
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            sent: list[tuple[int, bytes]] = []
            with self._lock:
                self._streams.append(sent)
            threading.Thread(target=self._pump, args=(client, upstream, sent), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    def requests(self, path: str) -> list[dict]:
        """The JSON bodies of the requests to `path`, in the order they were sent, over every connection."""
        with self._lock:
            streams = [list(stream) for stream in self._streams]
        found: list[tuple[int, dict]] = []
        for chunks in streams:
            data, starts = b"", []  # starts: (offset in data, order of the chunk that began there)
            for order, chunk in chunks:
                starts.append((len(data), order))
                data += chunk
            offset = 0
            while (end := data.find(b"\r\n\r\n", offset)) >= 0:
                order = max(number for start, number in starts if start <= offset)
                request_line, *header_lines = data[offset:end].decode("latin-1").split("\r\n")
                headers = {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
                length = int(headers.get("content-length", "0"))
                body = data[end + 4 : end + 4 + length]
                offset = end + 4 + length
                if request_line.split(" ")[1] == path:
                    found.append((order, json.loads(body)))
        return [body for _, body in sorted(found, key=lambda item: item[0])]

    def _pump(self, source: socket.socket, sink: socket.socket, record: list[tuple[int, bytes]] | None) -> None:
        try:
            while chunk := source.recv(65536):
                if record is not None:
                    with self._lock:
                        record.append((next(self._order), chunk))
                sink.sendall(chunk)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self._listener.close()


@contextlib.contextmanager
def recording_relay(target_url: str) -> Iterator[RecordingRelay]:
    relay = RecordingRelay(urlsplit(target_url).port)
    threading.Thread(target=relay.serve, daemon=True).start()
    try:
        yield relay
    finally:
        relay.close()
