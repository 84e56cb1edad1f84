"""API keys: `Authorization: Bearer <key>` on every route but /health.

Keys are kept only as SHA-256 digests (a Modal secret may hold digests, never the keys), a
presented key is hashed and compared with every digest in constant time, and neither a key
nor its digest is ever logged: requests are identified by a short key id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/health"})
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
    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        token = _bearer_token(scope)
        key_id = self.keys.identify(token) if token else None
        if key_id is None:
            await _unauthorized(send)
            return
        scope.setdefault("state", {})["api_key_id"] = key_id
        await self.app(scope, receive, send)


async def _unauthorized(send: Send) -> None:
    body = json.dumps({"detail": "missing or invalid API key: send `Authorization: Bearer <key>`"}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Bearer realm="therapist-streaming"'),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})
