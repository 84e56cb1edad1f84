"""TGI's HTTP routes (router/src/server.rs): /generate, /generate_stream, compat `/`, /health,
/info, /metrics. Handlers read the body, call Inference, and put the result on the wire."""

from __future__ import annotations

import dataclasses
import time
from typing import AsyncGenerator

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp

from localtgi.config import ServerConfig
from localtgi.errors import ConnectionDropped, IncompleteGenerationStream, InferError
from localtgi.faults import Faults
from localtgi.inference import Inference, Timings
from localtgi.request_body import GenerateRequest, read_generate_request
from localtgi.responses import DroppedResponse, EventStreamResponse, cancel_on_disconnect
from localtgi.wire import (
    Generation,
    error_event,
    error_json,
    final_event,
    generate_response_json,
    json_text,
    malformed_event,
    token_event,
)

TGI_VERSION = "3.3.6-dev0"  # what TGI v3.3.7 reports: its Cargo version was never bumped
JSON = "application/json"


def _seconds_text(seconds: float) -> str:
    """Rust's f64 Display: shortest digits, never an exponent."""
    text = repr(seconds)
    return f"{seconds:.17f}".rstrip("0") if "e" in text else text


def _generate_headers(
    config: ServerConfig, request: GenerateRequest, generation: Generation, timings: Timings
) -> dict[str, str]:
    times = timings.header_values(len(generation.tokens))
    return {
        "x-compute-type": config.compute_type,
        "x-compute-time": _seconds_text(times["total"]),
        "x-compute-characters": str(len(request.inputs)),
        "x-total-time": str(int(times["total"] * 1000)),
        "x-validation-time": str(int(times["validation"] * 1000)),
        "x-queue-time": str(int(times["queue"] * 1000)),
        "x-inference-time": str(int(times["inference"] * 1000)),
        "x-time-per-token": str(int(times["time_per_token"] * 1000)),
        "x-prompt-tokens": str(generation.input_length),
        "x-generated-tokens": str(len(generation.tokens)),
    }


class TgiRoutes:
    def __init__(self, config: ServerConfig, inference: Inference, faults: Faults) -> None:
        self.config = config
        self.inference = inference
        self.faults = faults

    async def _read(self, request: Request, compat: bool = False) -> GenerateRequest:
        return await read_generate_request(
            request.headers.get("content-type"), request.stream(), self.config.limits.payload_limit, compat=compat
        )

    async def generate(self, request: Request) -> ASGIApp:
        return await self._generate(request, await self._read(request))

    async def generate_stream(self, request: Request) -> ASGIApp:
        return self._generate_stream(await self._read(request))

    async def compat_generate(self, request: Request) -> ASGIApp:
        body = await self._read(request, compat=True)
        if body.parameters.return_full_text is None:
            # TGI's default for a model whose pipeline tag is text-generation (or unknown).
            body = dataclasses.replace(body, parameters=dataclasses.replace(body.parameters, return_full_text=True))
        if body.stream:
            return self._generate_stream(body)
        return await self._generate(request, body, as_list=True)

    async def _generate(self, request: Request, body: GenerateRequest, as_list: bool = False) -> ASGIApp:
        received_at = time.monotonic()
        self.inference.metrics.request_count.inc()
        finished, response = await cancel_on_disconnect(request.receive, self._run_generate(body, received_at, as_list))
        return response if finished else Response(status_code=499)  # nobody is listening any more

    async def _run_generate(self, body: GenerateRequest, received_at: float, as_list: bool) -> ASGIApp:
        parameters = body.parameters
        try:
            if parameters.best_of is not None and parameters.best_of > 1:
                (generation, timings), others = await self.inference.generate_best_of(
                    body, parameters.best_of, received_at
                )
            else:
                (generation, timings), others = await self.inference.generate(body, received_at), ()
        except InferError as error:
            return Response(error_json(error), status_code=error.status, media_type=JSON)
        except ConnectionDropped:
            return DroppedResponse({"content-type": JSON}, partial_body=b'{"generated_text":"')
        prompt = body.inputs if parameters.return_full_text else ""
        content = generate_response_json(
            generation, parameters.details or parameters.decoder_input_details, prompt, others
        )
        return Response(
            f"[{content}]" if as_list else content,
            media_type=JSON,
            headers=_generate_headers(self.config, body, generation, timings),
        )

    def _generate_stream(self, body: GenerateRequest) -> ASGIApp:
        received_at = time.monotonic()
        self.inference.metrics.request_count.inc()
        headers = {
            "x-compute-type": self.config.compute_type,
            "x-compute-characters": str(len(body.inputs)),
            "x-accel-buffering": "no",
        }
        return EventStreamResponse(self._stream_events(body, received_at), headers, self.config.keep_alive_seconds)

    async def _stream_events(self, body: GenerateRequest, received_at: float) -> AsyncGenerator[bytes, None]:
        """Token events, then the final event; or one error event. HTTP status is 200 regardless."""
        parameters = body.parameters
        prompt = body.inputs if parameters.return_full_text else ""
        try:
            self.inference.check_stream_parameters(parameters)
            with self.inference.admit():
                valid = self.inference.validate(body)
                index = 0
                async for step in self.inference.steps(valid, received_at):
                    if index == self.faults.malformed_after:
                        yield malformed_event(index + 1)
                    index += 1
                    if step.finished is None:
                        yield token_event(index, step.token)
                    else:
                        yield final_event(index, step.finished, parameters.details, prompt)
                        return
                raise IncompleteGenerationStream()
        except InferError as error:
            yield error_event(error)

    async def health(self, request: Request) -> Response:
        if self.faults.unhealthy:
            return Response(json_text({"error": "unhealthy", "error_type": "healthcheck"}), 503, media_type=JSON)
        return Response()

    async def info(self, request: Request) -> Response:
        limits = self.config.limits
        info = {  # TGI's Info struct, in its field order
            "model_id": self.config.model_id,
            "model_sha": None,
            "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": limits.max_concurrent_requests,
            "max_best_of": limits.max_best_of,
            "max_stop_sequences": limits.max_stop_sequences,
            "max_input_tokens": limits.max_input_tokens,
            "max_total_tokens": limits.max_total_tokens,
            "validation_workers": 2,
            "max_client_batch_size": limits.max_client_batch_size,
            "router": "text-generation-router",
            "version": TGI_VERSION,
            "sha": None,
            "docker_label": None,
        }
        return Response(json_text(info), media_type=JSON)

    async def metrics(self, request: Request) -> Response:
        return PlainTextResponse(self.inference.metrics.render())
