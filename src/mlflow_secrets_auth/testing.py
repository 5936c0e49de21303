"""A contract test kit for secret store packages (SPEC §12).

Plain functions that a store's own test suite calls (pytest or not); each raises
``AssertionError`` with a message that names the problem and never the payload::

    from mlflow_secrets_auth.testing import check_store

    def test_my_store_honours_the_contract(my_server):
        check_store(
            MyStore,
            env={"MLFLOW_MYSTORE_URL": my_server.url, "MLFLOW_MYSTORE_NAME": "mlflow"},
            payload_text="the-secret-value",           # what the store returns for env
            hanging_env={"MLFLOW_MYSTORE_URL": silent_url},  # a server that never answers
        )

What it checks: the declarations are well formed; the loader reads only declared variables;
settings errors name a variable and never echo a value; ``fetch()`` ends within the time bound;
and no error, log record or repr contains the payload.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from .backends.base import CommonSettings, FetchedSecret, SecretStore, StoreSettings
from .errors import ConfigurationError, SecretsAuthError

__all__ = [
    "RecordingMapping",
    "check_declarations",
    "check_fetch_is_bounded",
    "check_no_payload_leak",
    "check_reads_only_declared",
    "check_settings_errors",
    "check_store",
    "common_settings",
    "silent_endpoint",
]

_SENTINEL = "contract-kit-sentinel-\u2603-value"
#: Variables the plugin parses for every store; a loader may read them too.
_COMMON_SUFFIXES = ("_AUTH_MODE", "_TTL_SEC")


class RecordingMapping(Mapping[str, str]):
    """A read-only mapping that remembers every key looked up (present or not)."""

    def __init__(self, data: Mapping[str, str]) -> None:
        self._data = dict(data)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._data[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return self._data.get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        raise AssertionError(
            "the loader iterated over the whole environment: read declared variables by name"
        )

    def __len__(self) -> int:
        return len(self._data)


def common_settings(store: type[SecretStore[Any]], timeout_sec: float = 5.0) -> CommonSettings:
    """The common settings the plugin would pass to ``store``'s loader."""
    return CommonSettings(
        backend_name=store.name,
        auth_mode="bearer",
        ttl_sec=store.default_ttl_sec,
        timeout_sec=timeout_sec,
    )


def _declared(store: type[SecretStore[Any]]) -> set[str]:
    return {v.name for v in store.variables} | {store.prefix + s for s in _COMMON_SUFFIXES}


def check_declarations(store: type[SecretStore[Any]]) -> None:
    """Name, prefix and variables are present, unique and in the expected form."""
    name = getattr(store, "name", "")
    assert name and name == name.lower() and " " not in name and "_" not in name, (
        f"{store.__name__}.name must be lower case with dashes, e.g. 'my-store' (got {name!r})"
    )
    prefix = getattr(store, "prefix", "")
    assert prefix and prefix == prefix.upper(), f"{name}: prefix must be upper case, e.g. MLFLOW_X"
    names = [v.name for v in store.variables]
    assert len(names) == len(set(names)), f"{name}: a variable is declared twice"
    keys = [v.key for v in store.variables if v.key]
    assert len(keys) == len(set(keys)), f"{name}: a profile key is declared twice"
    for variable in store.variables:
        assert variable.help, f"{name}: {variable.name} has no help text"
        assert not (variable.secret and variable.key), (
            f"{name}: {variable.name} holds a secret, so it cannot have a profile key (a "
            "config file must never hold a secret)"
        )


def check_reads_only_declared(
    store: type[SecretStore[Any]], env: Mapping[str, str]
) -> StoreSettings:
    """Load settings from ``env`` and check that only declared variables were looked up."""
    recording = RecordingMapping(env)
    settings = store.load_settings(recording, common_settings(store))
    undeclared = sorted(recording.read - _declared(store))
    assert not undeclared, f"{store.name}: the loader read undeclared variables: {undeclared}"
    assert isinstance(settings, StoreSettings), f"{store.name}: settings must be StoreSettings"
    assert settings.backend_name == store.name, f"{store.name}: settings name another store"
    hash(settings)  # the runtime keys store instances by settings
    return settings


def check_settings_errors(store: type[SecretStore[Any]], env: Mapping[str, str]) -> None:
    """Each declared variable, set to a malformed value or removed, either still loads or
    raises a ConfigurationError that names a variable and does not echo the value."""
    declared = _declared(store)
    for variable in store.variables:
        if variable.sdk:
            continue
        for changed in (
            {**env, variable.name: _SENTINEL},
            {k: v for k, v in env.items() if k != variable.name},
        ):
            try:
                store.load_settings(changed, common_settings(store))
            except ConfigurationError as error:
                text = str(error)
                assert _SENTINEL not in text, (
                    f"{store.name}: the error for {variable.name} echoes the value"
                )
                named = error.variable in declared or any(n in text for n in declared)
                assert named, f"{store.name}: the error for {variable.name} names no variable"
            except Exception as error:
                raise AssertionError(
                    f"{store.name}: a bad {variable.name} raised {type(error).__name__}, not "
                    "ConfigurationError"
                ) from None


def _fetch_in_thread(store: SecretStore[Any], limit: float) -> tuple[bool, object]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(store.fetch())
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    return (not worker.is_alive(), outcome[0] if outcome else None)


def check_fetch_is_bounded(
    store: type[SecretStore[Any]], hanging_env: Mapping[str, str], timeout_sec: float = 1.0
) -> None:
    """Against a service that never answers, ``fetch()`` ends with a BackendError within a
    generous multiple of ``timeout_sec`` (it catches "minutes", not scheduling noise)."""
    settings = store.load_settings(hanging_env, common_settings(store, timeout_sec))
    instance = store(settings)
    limit = timeout_sec * 5 + 2
    started = time.monotonic()
    try:
        finished, outcome = _fetch_in_thread(instance, limit)
    finally:
        with contextlib.suppress(Exception):
            instance.close()
    elapsed = time.monotonic() - started
    assert finished, f"{store.name}: fetch() was still running after {elapsed:.1f}s"
    assert isinstance(outcome, SecretsAuthError), (
        f"{store.name}: fetch() against a silent service ended with "
        f"{type(outcome).__name__}, not a BackendError"
    )


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.lines.append(self.format(record))


@contextlib.contextmanager
def _all_logs_at_debug() -> Iterator[_Capture]:
    capture = _Capture()
    capture.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    package = logging.getLogger("mlflow_secrets_auth")
    old_package = package.level
    package.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
        package.setLevel(old_package)


def check_no_payload_leak(
    store: type[SecretStore[Any]],
    env: Mapping[str, str],
    payload_text: str,
    failing_env: Mapping[str, str] | None = None,
) -> FetchedSecret:
    """Fetch at DEBUG (every logger) and check that ``payload_text`` appears in no log record,
    repr or error; with ``failing_env``, the failure's error text is checked too."""
    texts: list[tuple[str, str]] = []
    with _all_logs_at_debug() as capture:
        settings = store.load_settings(env, common_settings(store))
        instance = store(settings)
        try:
            fetched = instance.fetch()
            texts += [("repr(store)", repr(instance)), ("repr(settings)", repr(settings))]
            texts += [("repr(fetched)", repr(fetched)), ("str(fetched)", str(fetched))]
            texts.append(("describe()", settings.describe()))
        finally:
            with contextlib.suppress(Exception):
                instance.close()
        if failing_env is not None:
            bad = store(store.load_settings(failing_env, common_settings(store)))
            failure: Exception | None = None
            try:
                bad.fetch()
            except Exception as error:
                failure = error
                texts += [("the failure's message", str(error)), ("its repr", repr(error))]
            finally:
                with contextlib.suppress(Exception):
                    bad.close()
            assert failure is not None, f"{store.name}: fetch() with failing_env did not fail"
            assert isinstance(failure, SecretsAuthError), (
                f"{store.name}: a failed fetch raised {type(failure).__name__}, not a BackendError"
            )
    texts += [(f"log record {i}", line) for i, line in enumerate(capture.lines)]
    leaks = [where for where, text in texts if payload_text in text]
    assert not leaks, f"{store.name}: the payload appears in {', '.join(leaks)}"
    assert _payload_holds(fetched, payload_text), (
        f"{store.name}: fetch() did not return the expected payload"
    )
    return fetched


def _payload_holds(fetched: FetchedSecret, payload_text: str) -> bool:
    payload = fetched.payload
    if isinstance(payload, bytes):
        return payload_text in payload.decode("utf-8", "replace")
    if isinstance(payload, Mapping):
        return any(payload_text in str(v) for v in payload.values())
    return payload_text in payload


@contextlib.contextmanager
def silent_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT``: accepts connections and never answers (for hanging_env)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def check_store(
    store: type[SecretStore[Any]],
    env: Mapping[str, str],
    payload_text: str,
    *,
    failing_env: Mapping[str, str] | None = None,
    hanging_env: Mapping[str, str] | None = None,
) -> None:
    """Every check above, in order. ``env`` must make ``fetch()`` return a payload containing
    ``payload_text``; ``failing_env`` (optional) must make it fail; ``hanging_env`` (optional)
    must point it at a service that never answers."""
    check_declarations(store)
    check_reads_only_declared(store, env)
    check_settings_errors(store, env)
    check_no_payload_leak(store, env, payload_text, failing_env)
    if hanging_env is not None:
        check_fetch_is_bounded(store, hanging_env)
