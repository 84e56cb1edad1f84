"""What the faces declare about their routes, and the dispatcher that serves the fast ones.

A streaming route pays, on every token, for whatever wraps its `send`: under FastAPI, six layers
(its error, telemetry and exception middlewares, its routing), and 0.3 ms before the handler
starts (docs/benchmarks.md, "What the profiles said"). So a face may register a route to be served
as a plain ASGI endpoint ahead of FastAPI, inside our own middleware; FastAPI keeps the rest.
"""

from __future__ import annotations

from typing import NamedTuple

from starlette.types import ASGIApp, Receive, Scope, Send


def route_path(scope: Scope) -> str:
    """The path the app routes on: behind a prefix (uvicorn --root-path /api), ASGI's `path` starts
    with `root_path`, and FastAPI matches what follows it. Every middleware that looks at the path
    asks here."""
    path, root_path = scope["path"], scope.get("root_path", "")
    if root_path and path.startswith(root_path) and path[len(root_path) : len(root_path) + 1] == "/":
        return path[len(root_path) :]
    return path


class RouteLabel(NamedTuple):
    """What the request log reads from scope["route"] (Starlette puts its route object there)."""

    path: str


class Routes:
    """Routes served on the fast path, and routes that need no API key."""

    def __init__(self) -> None:
        self.fast: dict[tuple[str, str], tuple[ASGIApp, RouteLabel]] = {}
        self.public: set[str] = set()

    def add_fast(self, method: str, path: str, endpoint: ASGIApp) -> None:
        self.fast[(method, path)] = (endpoint, RouteLabel(path))

    def add_public(self, path: str) -> None:
        self.public.add(path)

    def is_public(self, scope: Scope) -> bool:
        return route_path(scope) in self.public


class FastRoutes:
    """The registered fast routes to their endpoints; everything else (lifespan included) to `app`."""

    def __init__(self, routes: Routes, app: ASGIApp) -> None:
        self._fast = routes.fast
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (found := self._fast.get((scope["method"], route_path(scope)))):
            endpoint, scope["route"] = found
            await endpoint(scope, receive, send)
        else:
            await self._app(scope, receive, send)
