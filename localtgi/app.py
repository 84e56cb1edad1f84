"""The Starlette app: TGI's routes plus localtgi's admin routes under /_localtgi/.

Admin routes (not part of TGI):
- GET /_localtgi/faults: the current fault set as JSON (fields of faults.Faults).
- PUT /_localtgi/faults: replace it; fields left out take their defaults (off).
- GET /_localtgi/stats: generation counters (active, started, completed, cancelled, failed), and the
  latest cancellations and completions with their seeds and wall-clock times (for load tests).
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from localtgi.config import ServerConfig
from localtgi.engine import Engine
from localtgi.errors import BodyRejection
from localtgi.faults import Faults
from localtgi.inference import Inference
from localtgi.metrics import TgiMetrics
from localtgi.server import JSON, TgiRoutes
from localtgi.wire import json_text


def create_app(config: ServerConfig, engine: Engine, faults: Faults) -> Starlette:
    inference = Inference(engine, config.limits, faults, TgiMetrics(config.limits))
    tgi = TgiRoutes(config, inference, faults)

    async def get_faults(request: Request) -> Response:
        return Response(json_text(faults.to_json()), media_type=JSON)

    async def put_faults(request: Request) -> Response:
        try:
            replacement = Faults.from_json(json.loads(await request.body()))
        except ValueError as error:  # json.JSONDecodeError is a ValueError too
            return PlainTextResponse(f"invalid fault set: {error}", status_code=400)
        vars(faults).update(vars(replacement))  # in place: the server holds this object
        return await get_faults(request)

    async def get_stats(request: Request) -> Response:
        return Response(json_text(inference.stats.to_json()), media_type=JSON)

    routes = [
        Route("/generate", tgi.generate, methods=["POST"]),
        Route("/generate_stream", tgi.generate_stream, methods=["POST"]),
        Route("/", tgi.compat_generate, methods=["POST"]),
        Route("/", tgi.health, methods=["GET"]),
        Route("/health", tgi.health, methods=["GET"]),
        Route("/ping", tgi.health, methods=["GET"]),
        Route("/info", tgi.info, methods=["GET"]),
        Route("/metrics", tgi.metrics, methods=["GET"]),
        Route("/_localtgi/faults", get_faults, methods=["GET"]),
        Route("/_localtgi/faults", put_faults, methods=["PUT"]),
        Route("/_localtgi/stats", get_stats, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={BodyRejection: _body_rejection, HTTPException: _bare_status})


async def _body_rejection(request: Request, error: Exception) -> Response:
    assert isinstance(error, BodyRejection)
    return PlainTextResponse(error.text, status_code=error.status)


async def _bare_status(request: Request, error: Exception) -> Response:
    """axum answers unknown routes (404) and wrong methods (405) with an empty body."""
    assert isinstance(error, HTTPException)
    return Response(status_code=error.status_code, headers=error.headers)
