"""A TCP hop in front of a server that closes connections under chosen requests.

It relays bytes both ways, except that the first `drops` times a client sends bytes that contain
`marker`, it closes both sides at once and forwards nothing: what a client sees when the server
closes a (pooled) connection just as a request is written to it. `reset`: close the client's side
with a TCP reset instead of an orderly close.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from typing import Iterator
from urllib.parse import urlsplit


class DroppingRelay:
    def __init__(self, target_port: int, marker: bytes, drops: int, reset: bool = False) -> None:
        self.target_port = target_port
        self.reset = reset
        self.marker = marker
        self.drops_left = drops
        self.dropped = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed: the relay is shutting down
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _should_drop(self, chunk: bytes) -> bool:
        with self._lock:
            if self.drops_left and self.marker in chunk:
                self.drops_left -= 1
                self.dropped += 1
                return True
        return False

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if from_client and self._should_drop(chunk):
                    if self.reset:  # linger on, 0 s: close() sends RST
                        source.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    break
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
def dropping_relay(target_url: str, marker: bytes, drops: int, reset: bool = False) -> Iterator[DroppingRelay]:
    relay = DroppingRelay(urlsplit(target_url).port, marker, drops, reset)
    threading.Thread(target=relay.serve, daemon=True).start()
    try:
        yield relay
    finally:
        relay.close()
