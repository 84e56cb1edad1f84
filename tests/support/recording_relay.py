"""A TCP hop in front of a server that keeps every HTTP request passing through it: what the proxy
really sent upstream, to compare across routes."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from typing import Iterator
from urllib.parse import urlsplit


class RecordingRelay:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._streams: list[bytearray] = []  # what each client connection sent, in order
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
            sent = bytearray()
            with self._lock:
                self._streams.append(sent)
            threading.Thread(target=_pump, args=(client, upstream, sent), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client, None), daemon=True).start()

    def requests(self, path: str) -> list[dict]:
        """The JSON bodies of the requests to `path`, in the order each connection sent them."""
        with self._lock:
            streams = [bytes(stream) for stream in self._streams]
        bodies = []
        for stream in streams:
            while (end := stream.find(b"\r\n\r\n")) >= 0:
                head, stream = stream[:end].decode("latin-1"), stream[end + 4 :]
                request_line, *header_lines = head.split("\r\n")
                headers = {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
                length = int(headers.get("content-length", "0"))
                body, stream = stream[:length], stream[length:]
                if request_line.split(" ")[1] == path:
                    bodies.append(json.loads(body))
        return bodies

    def close(self) -> None:
        self._listener.close()


def _pump(source: socket.socket, sink: socket.socket, record: bytearray | None) -> None:
    try:
        while chunk := source.recv(65536):
            if record is not None:
                record += chunk
            sink.sendall(chunk)
    except OSError:
        pass
    for end in (source, sink):
        with contextlib.suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)
        end.close()


@contextlib.contextmanager
def recording_relay(target_url: str) -> Iterator[RecordingRelay]:
    relay = RecordingRelay(urlsplit(target_url).port)
    threading.Thread(target=relay.serve, daemon=True).start()
    try:
        yield relay
    finally:
        relay.close()
