"""Secret files as the tools that write them do: a Kubernetes Secret volume, and a file this
process cannot read.

`SecretVolume` follows the kubelet's AtomicWriter: every update writes a new timestamped
directory, points a `..data_tmp` link at it, renames that link over `..data` (one atomic step),
and each key is a stable link `key -> ..data/key`. A reader that opens `<volume>/token` sees
either the old or the new value, never a mix, while the path itself never changes.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

_NOBODY = 65534


class SecretVolume:
    """A directory laid out like a mounted Kubernetes Secret."""

    def __init__(self, root: Path, *, mode: int = 0o644) -> None:
        self.root = root
        self.mode = mode  # the volume's defaultMode (Kubernetes' default is 0644)
        self.root.mkdir(parents=True, exist_ok=True)
        self._serial = itertools.count()

    def path(self, key: str) -> Path:
        return self.root / key

    @property
    def data_dir(self) -> Path:
        """The timestamped directory `..data` points at right now."""
        return self.root / os.readlink(self.root / "..data")

    def write(self, data: Mapping[str, str]) -> Path:
        """Publish a new version of every key atomically; returns the new timestamped dir."""
        stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime())
        new_dir = self.root / f"..{stamp}.{os.getpid()}{next(self._serial)}"
        new_dir.mkdir()
        for key, value in data.items():
            file = new_dir / key
            file.write_text(value)
            file.chmod(self.mode)
        data_link = self.root / "..data"
        old_dir = self.data_dir if data_link.is_symlink() else None
        tmp_link = self.root / "..data_tmp"
        tmp_link.symlink_to(new_dir.name)
        os.replace(tmp_link, data_link)
        for key in data:
            link = self.root / key
            if not link.is_symlink():
                link.symlink_to(Path("..data") / key)
        if old_dir is not None:
            shutil.rmtree(old_dir)
        return new_dir


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """Run the body with the effective ids of `nobody` when this process is root (which reads
    any file whatever its mode), so a file's permissions are checked by the kernel for real."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        yield
        return
    os.setegid(_NOBODY)
    os.seteuid(_NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)
