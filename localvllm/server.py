"""vLLM's routes (docs/wire-vllm.md) on localtgi's inference loop: the engine, pacing, stopping
rules and faults are localtgi's; the request checks, the chunks and the errors are vLLM's.

Admin routes (not vLLM's): GET/PUT /_localvllm/faults and GET /_localvllm/stats, as localtgi's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from typing import Any, AsyncGenerator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from localtgi.config import Limits
from localtgi.engine import Engine
from localtgi.errors import GenerationError, IncompleteGeneration
from localtgi.faults import Faults
from localtgi.inference import Inference
from localtgi.metrics import TgiMetrics
from localtgi.responses import EventStreamResponse, cancel_on_disconnect
from localtgi.validation import ValidRequest
from localvllm.protocol import Completion, CompletionError, bad_request, parse_completion

VLLM_VERSION = "0.34.0"
DONE = b"data: [DONE]\n\n"
NO_KEEP_ALIVE_S = 1e9  # vLLM sends none unless --sse-keep-alive-interval is set
_FINISH = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}  # localtgi's -> vLLM's


class VllmMetrics:
    def __init__(self, model: str) -> None:
        self.registry = registry = CollectorRegistry()
        labels = {"model_name": model, "engine": "0"}
        self.running = Gauge("vllm:num_requests_running", "Requests in the model's batch.", list(labels),
                             registry=registry).labels(**labels)  # fmt: skip
        self.waiting = Gauge("vllm:num_requests_waiting", "Requests waiting.", list(labels),
                             registry=registry).labels(**labels)  # fmt: skip
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Prefill tokens processed.", list(labels),
                                     registry=registry).labels(**labels)  # fmt: skip
        self.generation_tokens = Counter("vllm:generation_tokens", "Generation tokens processed.", list(labels),
                                         registry=registry).labels(**labels)  # fmt: skip
        self._success = Counter("vllm:request_success", "Successful requests.", [*labels, "finished_reason"],
                                registry=registry)  # fmt: skip
        self._labels = labels
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "Time to first token.", list(labels),
                              registry=registry).labels(**labels)  # fmt: skip
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "End to end request latency.", list(labels),
                             registry=registry).labels(**labels)  # fmt: skip

    def success(self, reason: str) -> None:
        self._success.labels(**self._labels, finished_reason=reason).inc()


class VllmServer:
    def __init__(self, engine: Engine, faults: Faults, served: list[str], loras: dict[str, str], max_model_len: int,
                 sleep_mode: bool) -> None:  # fmt: skip
        self.engine = engine
        self.faults = faults
        self.served = served
        self.loras = loras
        self.max_model_len = max_model_len
        self.sleep_mode = sleep_mode
        unlimited = Limits(
            max_concurrent_requests=2**31, max_input_tokens=max_model_len, max_total_tokens=max_model_len
        )
        self.inference = Inference(engine, unlimited, faults, TgiMetrics(unlimited))
        self.metrics = VllmMetrics(served[0])
        self.created = int(time.time())
        self._awake = asyncio.Event()
        self._awake.set()
        self._sleep_level = 0

    # POST /v1/completions
    async def completions(self, request: Request) -> Response:
        received_at = time.monotonic()
        try:
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise bad_request("1 validation error: the body is not valid JSON", "body") from None
            completion = parse_completion(body, self.engine, self.served, set(self.loras), self.max_model_len)
            if self.faults.overload:
                raise CompletionError(503, "The engine is currently busy and cannot accept new requests. Please try "
                                      "again later or on a different instance.", "Service Unavailable")  # fmt: skip
        except CompletionError as error:
            return JSONResponse(error.body(), status_code=error.status)
        self.metrics.waiting.inc()
        try:
            await self._awake.wait()  # asleep, vLLM queues new requests until it wakes
        finally:
            self.metrics.waiting.dec()
        valid = ValidRequest(completion.prompt, completion.input_length, completion.params,
                             completion.params.max_new_tokens, completion.stop)  # fmt: skip
        if not completion.stream:
            completion = dataclasses.replace(completion, include_usage=True)  # a whole answer always has usage
        chunks = self._chunks(completion, valid, received_at)
        if completion.stream:
            return EventStreamResponse(chunks, {}, NO_KEEP_ALIVE_S)
        finished, result = await cancel_on_disconnect(request.receive, _whole(chunks))
        if not finished:
            return Response(status_code=499)
        return JSONResponse(result[0], status_code=result[1])

    async def _chunks(self, completion: Completion, valid: ValidRequest, received_at: float
                      ) -> AsyncGenerator[bytes, None]:  # fmt: skip
        """The stream's `data:` events, `[DONE]` last, errors included (as vLLM sends them)."""
        started = time.monotonic()
        head, tail = _chunk_template(f"cmpl-{os.urandom(16).hex()}", int(time.time()), completion.model)
        hold = max((len(stop) for stop in completion.stop), default=1) - 1  # a stop string may be starting
        pending, sent, index = "", 0, 0
        metrics = self.metrics
        metrics.running.inc()
        try:
            async for step in self.inference.steps(valid, received_at):
                if index == self.faults.malformed_after:
                    yield b"data: {not json\n\n"
                index += 1
                token = step.token
                if not token.special:
                    pending += token.text
                if step.finished is None:
                    ready = pending[: len(pending) - hold] if hold else pending
                    if ready:
                        if not sent:
                            metrics.ttft.observe(time.monotonic() - started)
                        sent += 1
                        pending = pending[len(ready) :]
                        yield head + json.dumps(ready, ensure_ascii=False).encode() + tail(None, None)
                    continue
                generation = step.finished
                stop_reason = None
                if generation.finish_reason == "stop_sequence":
                    cut = min((i for i in (pending.find(s) for s in completion.stop) if i >= 0), default=len(pending))
                    stop_reason = next((s for s in completion.stop if pending.find(s) == cut), None)
                    pending = pending[:cut]
                reason = _FINISH[generation.finish_reason]
                yield head + json.dumps(pending, ensure_ascii=False).encode() + tail(reason, stop_reason)
                completion_tokens = len(generation.tokens)  # EOS counts, as in vLLM
                metrics.prompt_tokens.inc(completion.input_length)
                metrics.generation_tokens.inc(completion_tokens)
                metrics.success(reason)
                metrics.e2e.observe(time.monotonic() - started)
                if completion.include_usage:
                    yield _usage_chunk(head, completion.input_length, completion_tokens)
                break
            else:
                raise IncompleteGeneration()
        except (GenerationError, IncompleteGeneration) as error:
            failure = {"error": {"message": str(error), "type": "InternalServerError", "param": None, "code": 500}}
            yield b"data: " + json.dumps(failure).encode() + b"\n\n"  # json.dumps' spacing, as vLLM's
        finally:
            metrics.running.dec()
        yield DONE

    async def models(self, request: Request) -> Response:
        base = self.served[0]
        cards = [self._card(name, self.engine.model_id, None, self.max_model_len) for name in self.served]
        cards += [self._card(name, path, base, None) for name, path in self.loras.items()]
        return JSONResponse({"object": "list", "data": cards})

    def _card(self, name: str, root: str, parent: str | None, max_model_len: int | None) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": self.created, "owned_by": "vllm", "root": root,
                "parent": parent, "max_model_len": max_model_len, "permission": []}  # fmt: skip

    async def health(self, request: Request) -> Response:
        return Response(status_code=503 if self.faults.unhealthy else 200)

    async def version(self, request: Request) -> Response:
        return JSONResponse({"version": VLLM_VERSION})

    async def prometheus(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # Sleep mode (VLLM_SERVER_DEV_MODE=1 and --enable-sleep-mode)
    async def sleep(self, request: Request) -> Response:
        level = int(request.query_params.get("level", "1"))
        if level not in (0, 1, 2):
            return JSONResponse(bad_request(f"level must be 0, 1 or 2, got {level}", "level").body(), 400)
        self._sleep_level = level
        self._awake.clear()
        return JSONResponse({"status": "sleeping", "level": level})

    async def wake_up(self, request: Request) -> Response:
        self._awake.set()
        return JSONResponse({"status": "awake", "tags": request.query_params.getlist("tags") or None})

    async def is_sleeping(self, request: Request) -> Response:
        return JSONResponse({"is_sleeping": not self._awake.is_set()})

    def routes(self) -> list[Route]:
        routes = [
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
            Route("/ping", self.health, methods=["GET", "POST"]),
            Route("/version", self.version, methods=["GET"]),
            Route("/metrics", self.prometheus, methods=["GET"]),
        ]
        if self.sleep_mode:
            routes += [
                Route("/sleep", self.sleep, methods=["POST"]),
                Route("/wake_up", self.wake_up, methods=["POST"]),
                Route("/is_sleeping", self.is_sleeping, methods=["GET"]),
            ]
        return routes


def _chunk_template(completion_id: str, created: int, model: str):
    """The bytes of a chunk before its text, and a function for those after it (made once per stream
    for the chunks in the middle, which all end the same)."""
    prefix = json.dumps({"id": completion_id, "object": "text_completion", "created": created, "model": model},
                        separators=(",", ":"), ensure_ascii=False)[:-1]  # fmt: skip
    head = f'data: {prefix},"choices":[{{"index":0,"text":'.encode()

    def tail(finish_reason: str | None, stop_reason: str | None) -> bytes:
        rest = {"logprobs": None, "finish_reason": finish_reason, "stop_reason": stop_reason, "prompt_token_ids": None,
                "token_ids": None, "weight_versions": None}  # fmt: skip
        return ("," + json.dumps(rest, separators=(",", ":"))[1:-1] + '}],"kv_transfer_params":null}\n\n').encode()

    middle = tail(None, None)
    return head, lambda finish_reason, stop_reason: middle if finish_reason is None else tail(finish_reason,
                                                                                               stop_reason)  # fmt: skip


def _usage_chunk(head: bytes, prompt_tokens: int, completion_tokens: int) -> bytes:
    start = head[: head.index(b',"choices"')]
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + completion_tokens,
             "completion_tokens": completion_tokens}  # fmt: skip
    return start + b',"choices":[],"usage":' + json.dumps(usage, separators=(",", ":")).encode() + b"}\n\n"


async def _whole(chunks: AsyncGenerator[bytes, None]) -> tuple[dict[str, Any], int]:
    """A non-streaming answer, built from the stream's chunks."""
    text, last, usage = [], None, None
    async for chunk in chunks:
        if chunk == DONE:
            break
        payload = json.loads(chunk[6:])
        if "error" in payload:
            return payload, 500
        if payload.get("choices"):
            text.append(payload["choices"][0]["text"])
            last = payload
        else:
            usage = payload["usage"]
    choice = {**last["choices"][0], "text": "".join(text)}
    return {**last, "choices": [choice], "usage": usage}, 200


def create_app(server: VllmServer, faults: Faults) -> Starlette:
    async def get_faults(request: Request) -> Response:
        return JSONResponse(faults.to_json())

    async def put_faults(request: Request) -> Response:
        try:
            replacement = Faults.from_json(json.loads(await request.body()))
        except ValueError as error:
            return JSONResponse({"error": f"invalid fault set: {error}"}, status_code=400)
        vars(faults).update(vars(replacement))
        return await get_faults(request)

    async def get_stats(request: Request) -> Response:
        return JSONResponse(server.inference.stats.to_json())

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        body = {"error": {"message": error.detail, "type": error.detail, "param": None, "code": error.status_code}}
        return JSONResponse(body, status_code=error.status_code, headers=error.headers)

    admin = [
        Route("/_localvllm/faults", get_faults, methods=["GET"]),
        Route("/_localvllm/faults", put_faults, methods=["PUT"]),
        Route("/_localvllm/stats", get_stats, methods=["GET"]),
    ]
    return Starlette(routes=server.routes() + admin, exception_handlers={HTTPException: http_error})
