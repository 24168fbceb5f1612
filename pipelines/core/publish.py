"""Publishing files readers can trust: written whole or not at all, readable by the team's group.

One helper each for an atomic file write and an atomic folder swap; both apply the configured
permissions (`paths.file_mode`, `paths.dir_mode`), so a mail service account or a team share in the
same group can read the lists and reports (temporary files would otherwise stay owner-only).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def share(path: Path, file_mode: int, dir_mode: int) -> None:
    """Apply the modes to a file, or to a folder and everything in it."""
    if path.is_dir():
        os.chmod(path, dir_mode)
        for root, dirs, files in os.walk(path):
            for d in dirs:
                os.chmod(Path(root) / d, dir_mode)
            for f in files:
                os.chmod(Path(root) / f, file_mode)
    else:
        os.chmod(path, file_mode)


def atomic_write(path: Path, write: Callable[[str], None], file_mode: int = 0o644) -> None:
    """Write a file through write(tmp_path) beside it, then move it into place in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, file_mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def swap_folder(staging: Path, target: Path, file_mode: int = 0o644, dir_mode: int = 0o755) -> None:
    """Replace target by the fully written staging folder, so readers never see a half-written one."""
    share(staging, file_mode, dir_mode)
    old = target.parent / f".{target.name}.old"
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
