"""The benchmark's reference: the least a relay of the contract can do, on bare asyncio.

    python scripts/bench_relay.py --port P --upstream-port U --request FILE

POST /stream_chat in, TGI's POST /generate_stream out (FILE holds the exact body the proxy would
send; the client's `max_tokens` replaces its max_new_tokens), and each TGI event reshaped into the
guide's frames: `{"token": ..., "done": false}` per visible token, then the final event with
finish_reason and usage. Protocol-level on both sides (httptools parsing; TGI's side is the load
generator's connection class, one kept alive per client connection; chunked writes), no framework,
no validation, no policies: what the proxy's figures are divided by in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import httptools
import uvloop
from bench_load import Connection

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Client(asyncio.Protocol):
    """One client connection: requests one after the other, each relayed to TGI."""

    def __init__(self, upstream_port: int, request: dict) -> None:
        self.upstream_port = upstream_port
        self.request = request
        self.parser = httptools.HttpRequestParser(self)
        self.body = b""
        self.transport: asyncio.Transport | None = None
        self.upstream: Connection | None = None  # the load generator's connection class: TGI's side

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()  # the client left: so does the generation

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        body, self.body = self.body, b""
        if not body:  # GET /health, say: the benchmark only asks whether we answer
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            return
        asyncio.ensure_future(self.relay(json.loads(body)["max_tokens"]))

    async def relay(self, max_tokens: int) -> None:
        if self.upstream is None or self.upstream.closed:
            self.upstream = await Connection.open("127.0.0.1", self.upstream_port)
        request = {**self.request, "parameters": {**self.request["parameters"], "max_new_tokens": max_tokens}}
        raw = json.dumps(request).encode()
        write = self.transport.write
        write(HEAD)

        def on_event(data: bytes, now: float) -> None:
            event = json.loads(data[5:])
            token = event["token"]
            if token["text"] and not token["special"]:
                write(chunk(b'data: {"token": ' + json.dumps(token["text"]).encode() + b', "done": false}\n\n'))
            details = event.get("details")
            if event.get("generated_text") is not None and details is not None:
                usage = {"prompt_tokens": None, "completion_tokens": details["generated_tokens"]}
                final = {"token": "", "done": True, "finish_reason": details["finish_reason"], "usage": usage}
                write(chunk(b"data: " + json.dumps(final).encode() + b"\n\n") + b"0\r\n\r\n")

        head = (b"POST /generate_stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(raw))  # fmt: skip
        try:
            await self.upstream.request(head + raw, on_event)
        except ConnectionError:
            self.upstream = None


async def serve(port: int, upstream_port: int, request: dict) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(upstream_port, request), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--request", type=Path, required=True, help="the TGI request body the proxy would send")
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.upstream_port, json.loads(args.request.read_text())))


if __name__ == "__main__":
    main()
