"""GET /v1/models: the one model this endpoint serves, as OpenAI's model list."""

from __future__ import annotations

import time

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from proxy.faces.openai.conversation import check_model
from proxy.settings import Settings

OWNER = "therapist-streaming"


def add_models(app: FastAPI, settings: Settings) -> None:
    model = {"id": settings.model_name, "object": "model", "created": int(time.time()), "owned_by": OWNER}

    @app.get("/v1/models", tags=["OpenAI"])
    async def list_models() -> JSONResponse:
        return JSONResponse({"object": "list", "data": [model]})

    @app.get("/v1/models/{model_id:path}", tags=["OpenAI"])
    async def retrieve_model(model_id: str) -> JSONResponse:
        check_model(model_id, settings)
        return JSONResponse(model)
