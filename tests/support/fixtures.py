"""Paths to the shared TGI reference fixtures (real TGI snapshots and wire facts)."""

from __future__ import annotations

import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TGI_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures" / "tgi"


def sse_payloads(name: str) -> list[str]:
    """The `data:` payloads of one derived .sse file, in order."""
    text = (TGI_FIXTURES / "derived" / name).read_text(encoding="utf-8")
    return [line[len("data:") :].lstrip(" ") for line in text.splitlines() if line.startswith("data:")]


def snapshot(folder: str, name: str):
    return json.loads((TGI_FIXTURES / "snapshots" / folder / name).read_text(encoding="utf-8"))
