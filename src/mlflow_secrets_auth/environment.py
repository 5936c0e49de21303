"""Cheap reads of environment variables for code that runs on every request.

``os.environ[...]`` encodes the key and decodes the value on each access; reading CPython's
underlying mapping with pre-encoded keys is several times faster and gives the same answer.
"""

from __future__ import annotations

import os

_data: dict[object, object] | None = getattr(os.environ, "_data", None)


def encode_names(names: tuple[str, ...]) -> tuple[object, ...]:
    """Keys for :func:`snapshot` (encoded once, up front)."""
    return tuple(os.environ.encodekey(n) for n in names) if _data is not None else names


def snapshot(keys: tuple[object, ...]) -> tuple[object, ...]:
    """The raw current values of ``keys``; equal tuples mean nothing changed."""
    if _data is not None:
        return tuple(map(_data.get, keys))
    return tuple(os.environ.get(str(k)) for k in keys)


def _raw_from_environ(key: object) -> object:
    return os.environ.get(str(key))


#: The undecoded value for an encoded key (cheap; compare or hash it, decode on demand).
raw_value = _data.get if _data is not None else _raw_from_environ


def decode(raw: object) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    return os.environ.decodevalue(raw)  # type: ignore[arg-type]
