"""`create_app(settings)`: the proxy as an ASGI application, put together from its layers.

faces (/stream_chat, /v1 (OpenAI), the page at /, /health + /metrics)  ->  chat service  ->  policies, upstream (TGI)
around them: request log, CORS, API keys, body size; errors answered by one responder
"""

from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from proxy.asgi.api_keys import ApiKeyMiddleware, ApiKeys
from proxy.asgi.body_limit import BodyLimitMiddleware
from proxy.asgi.error_responses import ErrorResponder
from proxy.asgi.request_log import RequestLogMiddleware
from proxy.asgi.routing import FastRoutes, Routes
from proxy.faces.openai.router import add_openai
from proxy.faces.operations import add_operations
from proxy.faces.page.router import add_page
from proxy.faces.stream_chat.router import add_stream_chat
from proxy.launcher.process import InferenceServer
from proxy.observability.health import HealthTracker
from proxy.observability.metrics import ProxyMetrics
from proxy.policies.control_tokens import ControlTokenGuard
from proxy.policies.crisis.care import CrisisCare
from proxy.policies.disclosure import DisclosureNotice, system_prompt_with_disclosure
from proxy.policies.drain import Drain
from proxy.policies.in_flight import StreamsInFlight
from proxy.policies.load_shedding import LoadShedder, LoopLag
from proxy.policies.stream_slots import StreamSlots
from proxy.service.chat_service import ChatService
from proxy.service.chat_template import load_chat_template
from proxy.service.prompt import PromptBuilder
from proxy.service.tokenizer import load_prompt_tokenizer
from proxy.settings import Settings, load_settings
from proxy.upstream.engines import build_upstream

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, inference_server: InferenceServer | None = None, drain: Drain | None = None
) -> ASGIApp:
    """`inference_server`: the child we launched, if any; /health follows its state, and shutting
    the app down stops it (nothing can use it after that). `drain`: what the server runs on SIGTERM
    (proxy/serve.py); /health and new streams follow it."""
    settings = settings or load_settings()
    drain = drain or Drain(StreamsInFlight())
    loop_lag = LoopLag() if settings.max_loop_lag_ms else None
    metrics = ProxyMetrics()
    upstream = build_upstream(settings)
    health = HealthTracker(upstream, inference_server, drain)
    tokenizer = load_prompt_tokenizer(settings.tokenizer_path, settings.adapter_dir)
    shedder = LoadShedder(drain.in_flight, settings.max_streams, loop_lag, settings.max_loop_lag_ms / 1000)
    policies = [
        drain,  # first: once draining, nothing else needs to look at the request
        shedder,
        drain.in_flight,
        StreamSlots(settings.max_streams_per_key),
        ControlTokenGuard(tokenizer.added_tokens() if tokenizer else ()),
    ]
    if settings.ai_disclosure_notice:
        policies.append(DisclosureNotice(settings.ai_disclosure))
    system_prompt = system_prompt_with_disclosure(settings.system_prompt, settings.ai_disclosure)
    prompts = PromptBuilder(load_chat_template(settings.adapter_dir), system_prompt, tokenizer)
    care = CrisisCare.from_settings(
        settings.safety_policy, settings.safety_region, settings.safety_resources_file, settings.safety_workers
    )
    service = ChatService(policies, prompts, upstream, health, metrics, care, drain, gates=(drain, shedder))
    logger.info("asking the inference server at %s for %s", settings.upstream_url, _adapter_wording(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # One health check at start-up: a server set up otherwise than these settings is found and
        # logged now (where it can tell: vLLM lists its adapters), not at the first request.
        startup_check = asyncio.create_task(health.check())
        watching = asyncio.create_task(loop_lag.watch()) if loop_lag is not None else None
        try:
            yield
        finally:
            startup_check.cancel()
            if watching is not None:
                watching.cancel()
            await upstream.aclose()
            if inference_server is not None:
                await asyncio.to_thread(inference_server.stop)

    app = FastAPI(title="Therapist streaming endpoint", version="1.0", lifespan=lifespan)
    errors = ErrorResponder(settings)
    errors.install(app)
    routes = Routes()
    add_stream_chat(app, routes, settings, service, errors)
    add_openai(app, routes, settings, service, errors)
    add_operations(app, routes, settings, health, upstream, metrics)
    add_page(app, routes, settings)
    return with_middleware(FastRoutes(routes, app), settings, metrics, routes, errors)


def with_middleware(
    app: ASGIApp, settings: Settings, metrics: ProxyMetrics, routes: Routes, errors: ErrorResponder
) -> ASGIApp:
    """Outermost first: request log (sees every answer), CORS (answers preflights), API keys, body size."""
    app = BodyLimitMiddleware(app, max_bytes=settings.max_body_bytes, errors=errors)
    api_keys = ApiKeys.from_settings(settings.api_keys, settings.api_keys_file)
    if api_keys.enabled:
        app = ApiKeyMiddleware(app, keys=api_keys, routes=routes, errors=errors)
    origins = [origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()]
    if origins:
        app = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "X-History-Dropped"],
            max_age=600,
        )
    return RequestLogMiddleware(app, metrics=metrics)


def _adapter_wording(settings: Settings) -> str:
    adapter = settings.upstream_adapter_id
    if adapter:
        return f"the LoRA adapter {adapter!r} (PROXY_ADAPTER_ID)"
    return "its base model (PROXY_ADAPTER_ID is empty)"


def freeze_startup_objects() -> None:
    """Move what start-up built (modules, classes, the app: ~90,000 objects) out of the garbage
    collector's reach. Otherwise every full collection walks all of them, and the event loop, with
    every stream on it, stalls for 20 to 70 ms (docs/benchmarks.md). They live as long as the
    process anyway; objects made later are collected as before."""
    gc.collect()
    gc.freeze()
