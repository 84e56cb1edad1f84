"""Write a folder completely or not at all, so an interrupted run leaves no half-written model."""

from __future__ import annotations

import errno
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_dir(target: Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty folder beside `target`; it becomes `target` when the block succeeds.

    Without `replace`, an existing non-empty `target` raises FileExistsError, checked on
    entry (before any slow work in the block) and again at the rename.
    """
    if not replace and _non_empty_dir(target):
        raise FileExistsError(errno.EEXIST, "already exists", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it owner-only; these folders are shared like any model folder
    try:
        yield staging
        if replace and target.exists():
            # Move the old folder aside first so `target` is never missing for long.
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            target.rename(old / target.name)
            staging.rename(target)
            shutil.rmtree(old)
        else:
            _rename_no_clobber(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _rename_no_clobber(source: Path, target: Path) -> None:
    # rename() silently replaces an empty folder and fails on a non-empty one.
    try:
        source.rename(target)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
            raise FileExistsError(errno.EEXIST, "already exists", str(target)) from exc
        raise


def _non_empty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())
