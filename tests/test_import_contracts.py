"""The import direction between the layers holds, and breaking it fails `lint-imports` (run by `make test`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fixtures import REPO_ROOT

PACKAGES = ("proxy", "localtgi", "localvllm", "adapters", "therapist_client", "safety")
NOTHING_OF_THE_PROXY = "The stand-ins and adapters know nothing of the proxy"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the packages and the contracts, to break."""
    skipped = shutil.ignore_patterns("__pycache__", "*.onnx", "*.jsonl")  # imports only: no model, no data
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=skipped)
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout
    assert "7 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("localtgi/engines/scripted.py", "import proxy.service.tokenizer", NOTHING_OF_THE_PROXY),
        ("adapters/validate.py", "from proxy.settings import Settings", NOTHING_OF_THE_PROXY),
        ("localvllm/server.py", "import proxy.upstream.vllm.wire", NOTHING_OF_THE_PROXY),
        ("proxy/upstream/vllm/client.py", "import proxy.upstream.tgi.wire", "No engine's client imports another's"),
        ("therapist_client/stream_chat.py", "import proxy.faces", "knows nothing of the server side"),
        ("proxy/service/chat_service.py", "import fastapi", "No HTTP framework below the ASGI layer"),
        ("proxy/policies/crisis/detector.py", "import safety.dataset", "training and evaluating it stay outside"),
        ("proxy/upstream/tgi/client.py", "from starlette.types import Scope", "No HTTP framework below the ASGI layer"),
        ("proxy/upstream/tgi/client.py", "import proxy.faces.stream_chat.framing", "The proxy's layers"),
        ("proxy/service/prompt.py", "import proxy.asgi.routing", "The proxy's layers"),
        ("proxy/faces/operations.py", "import proxy.faces.stream_chat.router", "No face imports another"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tree: Path, module: str, line: str, contract: str) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    broken = [text for text in result.stdout.splitlines() if text.endswith("BROKEN")]
    assert any(contract in text for text in broken), result.stdout
