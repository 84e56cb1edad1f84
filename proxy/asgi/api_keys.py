"""API keys: `Authorization: Bearer <key>` on every route but the public ones (/health).

Keys are kept only as SHA-256 digests (a Modal secret may hold digests, never the keys), a
presented key is hashed and compared with every digest in constant time, and neither a key
nor its digest is ever logged: requests are identified by a short key id.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from proxy.asgi.error_responses import ErrorResponder
from proxy.asgi.routing import Routes
from proxy.core.errors import Unauthorized
from proxy.observability.request_context import RequestContext

_DIGEST_ENTRY = re.compile(r"sha256:([0-9a-fA-F]{64})")


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    def __init__(self, digests: list[bytes]) -> None:
        self._digests = digests

    @classmethod
    def parse(cls, *sources: str) -> ApiKeys:
        """Entries separated by commas or newlines: a key, or `sha256:<hex digest of a key>`."""
        digests = []
        for source in sources:
            for entry in re.split(r"[,\n]", source):
                entry = entry.strip()
                if not entry or entry.startswith("#"):
                    continue
                hashed = _DIGEST_ENTRY.fullmatch(entry)
                digests.append(bytes.fromhex(hashed[1]) if hashed else key_digest(entry))
        return cls(digests)

    @classmethod
    def from_settings(cls, keys: str, keys_file: Path | None) -> ApiKeys:
        return cls.parse(keys, keys_file.read_text(encoding="utf-8") if keys_file else "")

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def identify(self, presented: str) -> str | None:
        """The key id (first 8 hex of its digest) of a valid key, else None.

        Every stored digest is compared, with compare_digest, against the digest of what was
        presented: the time taken does not depend on how much of a key was right.
        """
        digest = key_digest(presented)
        matched = False
        for stored in self._digests:
            matched |= hmac.compare_digest(stored, digest)
        return digest.hex()[:8] if matched else None


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, keys: ApiKeys, routes: Routes, errors: ErrorResponder) -> None:
        self.app = app
        self.keys = keys
        self.routes = routes
        self.errors = errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.routes.is_public(scope):
            await self.app(scope, receive, send)
            return
        token = _bearer_token(scope)
        key_id = self.keys.identify(token) if token else None
        if key_id is None:
            await self.errors.send(Unauthorized(), scope, receive, send)
            return
        RequestContext.of(scope).api_key_id = key_id
        await self.app(scope, receive, send)
