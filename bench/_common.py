"""Shared by the benchmarks: where the project is, so they can use the local servers in testbed/."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Run with these variables set and the plugin's state fresh; restore both afterwards."""
    from mlflow_secrets_auth import runtime

    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    runtime.reset()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        runtime.reset()
