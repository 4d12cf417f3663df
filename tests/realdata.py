"""Where the real files that other projects commit live: ``../shared/realdata`` beside the
repository (see its README). Never copied into the repository; tests that use them skip
cleanly when they are not there.

``IMAGINGDB_REALDATA`` points any checkout at them; a git worktree also finds them
beside its main checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def realdata_folder() -> Path:
    """The folder of real files: $IMAGINGDB_REALDATA, else beside the repository (or, for a
    git worktree, beside its main checkout)."""
    if os.environ.get("IMAGINGDB_REALDATA"):
        return Path(os.environ["IMAGINGDB_REALDATA"])
    candidates = [ROOT.parent / "shared" / "realdata"]
    git = ROOT / ".git"
    if git.is_file():  # a worktree: "gitdir: <main checkout>/.git/worktrees/<name>"
        gitdir = Path(git.read_text().split(":", 1)[1].strip())
        if len(gitdir.parents) > 2:
            candidates.append(gitdir.parents[2].parent / "shared" / "realdata")
    return next((path for path in candidates if path.is_dir()), candidates[0])


REALDATA = realdata_folder()


def real(relative: str | Path) -> Path:
    """A path under REALDATA; the test is skipped when it is not there."""
    path = REALDATA / relative
    if not path.exists():
        pytest.skip(f"{path} is not here (the real files live beside the project, not in it)")
    return path
