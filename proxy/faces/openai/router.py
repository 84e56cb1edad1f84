"""The OpenAI face, put together: its routes, and its error object for everything under /v1/."""

from __future__ import annotations

from fastapi import FastAPI

from proxy.asgi.error_responses import ErrorResponder
from proxy.asgi.routing import Routes
from proxy.faces.openai.chat_completions.router import add_chat_completions
from proxy.faces.openai.errors import PREFIX, openai_error_body
from proxy.faces.openai.models import add_models
from proxy.faces.openai.responses.router import add_responses
from proxy.service.chat_service import ChatService
from proxy.settings import Settings


def add_openai(app: FastAPI, routes: Routes, settings: Settings, service: ChatService, errors: ErrorResponder) -> None:
    errors.render_under(PREFIX, openai_error_body)
    add_chat_completions(app, routes, settings, service, errors)
    add_responses(app, routes, settings, service, errors)
    add_models(app, settings)
