import shutil
from pathlib import Path

import pytest


@pytest.fixture
def adapter_copy(dev_adapter: Path, tmp_path: Path) -> Path:
    """A copy of the dev adapter to break in one way or another."""
    return Path(shutil.copytree(dev_adapter, tmp_path / "adapter"))
