"""GET / and its two assets, served with a strict Content-Security-Policy: the page may load only its
own script and style and talk only to this server, so it works offline and nothing injected runs.
Public routes: the page itself needs no API key (it asks for one when the API does). The page carries
the operator's AI disclosure (PROXY_AI_DISCLOSURE), put in once at start-up."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response

from proxy.asgi.routing import Routes
from proxy.settings import Settings

STATIC = Path(__file__).parent / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_FILES = {  # route -> (file, media type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/page/chat.js": ("chat.js", "text/javascript; charset=utf-8"),
    "/page/chat.css": ("chat.css", "text/css; charset=utf-8"),
}


DISCLOSURE_SLOT = "{{ ai_disclosure }}"


def add_page(app: FastAPI, routes: Routes, settings: Settings) -> None:
    for path, (name, media_type) in _FILES.items():
        routes.add_public(path)
        body = (STATIC / name).read_bytes()  # read once, at start-up
        if name == "index.html":
            body = body.replace(DISCLOSURE_SLOT.encode(), html.escape(settings.ai_disclosure.strip()).encode())
        app.add_api_route(path, _serve(body, media_type), methods=["GET"], include_in_schema=False)


def _serve(body: bytes, media_type: str):
    async def serve() -> Response:
        return Response(body, media_type=media_type, headers=_HEADERS)

    return serve
