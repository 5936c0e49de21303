"""The file store on real files: a Kubernetes-style Secret volume with its atomic `..data` swap,
missing and unreadable files, and doctor's advice about a file others can read."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlflow_secrets_auth.backends.base import CommonSettings
from mlflow_secrets_auth.backends.file import RACY_WINDOW_NS, FileSettings, FileStore
from mlflow_secrets_auth.errors import (
    BackendError,
    ConfigurationError,
    IncompleteConfigurationError,
)
from mlflow_secrets_auth.testing import check_store

from support.secret_files import SecretVolume, unprivileged

VARIABLE = "MLFLOW_FILE_SECRET_PATH"
COMMON = CommonSettings(backend_name="file", auth_mode="auto", ttl_sec=30.0, timeout_sec=5.0)


def store_for(path: Path | str) -> FileStore:
    return FileStore(FileStore.load_settings({VARIABLE: str(path)}, COMMON))


def settle() -> None:
    """Let what was just written age past the racy window, so that the next fetch trusts its
    stat comparison alone (a file changed within the window is read again regardless)."""
    time.sleep(RACY_WINDOW_NS / 1e9 * 1.5)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may enter (pytest's tmp_path is private to root when run as
    root), so an unreadable file is refused by its own mode, not by its parent's."""
    folder = Path(tempfile.mkdtemp(prefix="file-store-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def fail(store: FileStore) -> BackendError:
    with pytest.raises(BackendError) as info:
        store.fetch()
    return info.value


# --- settings ----------------------------------------------------------------------------------


def test_declares_its_variable_profile_key_and_default_ttl() -> None:
    assert FileStore.name == "file"
    assert FileStore.prefix == "MLFLOW_FILE"
    assert FileStore.default_ttl_sec == 30
    assert [(v.name, v.key, v.secret) for v in FileStore.variables] == [
        (VARIABLE, "secret_path", False)
    ]
    assert FileStore.sdk_module is None


def test_unset_path_is_incomplete_configuration() -> None:
    with pytest.raises(IncompleteConfigurationError) as info:
        FileStore.load_settings({VARIABLE: "  "}, COMMON)
    assert info.value.missing == (VARIABLE,)


def test_nul_in_path_is_a_configuration_error_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError) as info:
        FileStore.load_settings({VARIABLE: "/run/secret\0x"}, COMMON)
    assert info.value.variable == VARIABLE
    assert "/run/secret" not in str(info.value)


def test_relative_path_becomes_absolute_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = FileStore.load_settings({VARIABLE: "secrets/token"}, COMMON)
    assert isinstance(settings, FileSettings)
    assert settings.secret_path == str(tmp_path / "secrets" / "token")
    assert settings.identity == f"file:{tmp_path / 'secrets' / 'token'}"
    assert str(tmp_path / "secrets" / "token") in settings.describe()
    assert settings.ttl_sec == 30.0 and settings.timeout_sec == 5.0
    # Hashable and equal by value: the runtime keeps one store per distinct settings.
    assert settings == FileStore.load_settings({VARIABLE: str(tmp_path / "secrets/token")}, COMMON)
    assert len({settings, FileStore.load_settings({VARIABLE: "other"}, COMMON)}) == 2


# --- reading -----------------------------------------------------------------------------------


def test_reads_a_plain_token_file_as_the_raw_payload(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("agent-sink-token-1234\n")  # a Vault Agent sink writes a bare token
    fetched = store_for(secret).fetch()
    assert fetched.payload == "agent-sink-token-1234\n"
    assert fetched.location == str(secret)
    assert fetched.expires_at is None
    assert "agent-sink-token" not in repr(fetched)


def test_reads_a_json_secret_and_strips_a_byte_order_mark(tmp_path: Path) -> None:
    secret = tmp_path / "credentials.json"
    body = json.dumps({"username": "alice", "password": "pw-from-a-csi-mount"})
    secret.write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert store_for(secret).fetch().payload == body


def test_kubernetes_atomic_swap_is_picked_up_and_unchanged_file_is_not_reread(
    tmp_path: Path,
) -> None:
    volume = SecretVolume(tmp_path / "volume")
    first_dir = volume.write({"token": "k8s-token-generation-1"})
    assert volume.path("token").is_symlink()
    store = store_for(volume.path("token"))
    settle()

    first = store.fetch()
    assert first.payload == "k8s-token-generation-1"
    assert store.fetch() is first  # unchanged: the same read, no new value

    second_dir = volume.write({"token": "k8s-token-generation-2"})
    assert second_dir != first_dir and not first_dir.exists()
    rotated = store.fetch()
    assert rotated.payload == "k8s-token-generation-2"
    assert rotated is not first
    assert store.fetch().payload == "k8s-token-generation-2"
    # The path the user configured never changed; only what `..data` points at did.
    assert store.settings.identity == f"file:{volume.path('token')}"


def test_unchanged_file_costs_a_stat_not_a_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "token"
    secret.write_text("stat-checked-value")
    settle()
    store = store_for(secret)
    caplog.set_level(logging.DEBUG, logger="mlflow_secrets_auth")
    first = store.fetch()
    unchanged = "Secret file unchanged"
    assert [r for r in caplog.records if r.getMessage().startswith(unchanged)] == []
    assert store.fetch() is first
    assert store.fetch() is first
    checks = [r.getMessage() for r in caplog.records if r.getMessage().startswith(unchanged)]
    assert checks == [f"Secret file unchanged since it was read (path={secret})"] * 2
    reads = [r for r in caplog.records if r.getMessage().startswith("Secret file read")]
    assert len(reads) == 1


def test_swap_to_same_size_value_with_old_timestamps_is_picked_up(tmp_path: Path) -> None:
    """The file the path resolves to tells the versions apart: same size, same mtime."""
    volume = SecretVolume(tmp_path / "volume")
    volume.write({"token": "value-AAAA"})
    os.utime(volume.data_dir / "token", ns=(1_000_000_000, 1_000_000_000))
    store = store_for(volume.path("token"))
    settle()
    assert store.fetch().payload == "value-AAAA"
    volume.write({"token": "value-BBBB"})
    os.utime(volume.data_dir / "token", ns=(1_000_000_000, 1_000_000_000))
    assert store.fetch().payload == "value-BBBB"


def test_in_place_rewrite_is_picked_up(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("in-place-one")
    store = store_for(secret)
    settle()
    assert store.fetch().payload == "in-place-one"
    secret.write_text("in-place-two")
    assert store.fetch().payload == "in-place-two"


def test_metadata_only_change_keeps_the_same_value(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("stable-value")
    store = store_for(secret)
    first = store.fetch()
    secret.chmod(0o600)
    assert store.fetch() is first


# --- errors ------------------------------------------------------------------------------------


def test_missing_file_names_the_variable_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "not-mounted" / "token"
    error = fail(store_for(missing))
    assert error.step == "read"
    assert VARIABLE in str(error)
    assert str(missing) in str(error)
    assert "does not exist" in str(error)


def test_dangling_symlink_says_so(tmp_path: Path) -> None:
    link = tmp_path / "token"
    link.symlink_to(tmp_path / "gone")
    error = fail(store_for(link))
    assert "symbolic link to a missing file" in str(error)
    assert VARIABLE in str(error)


def test_unreadable_file_names_the_variable_and_path_never_the_content(open_dir: Path) -> None:
    secret = open_dir / "token"
    secret.write_text("unreadable-secret-value")
    secret.chmod(0o000)
    store = store_for(secret)
    with unprivileged(), pytest.raises(BackendError) as info:
        store.fetch()
    error = info.value
    assert error.step == "read"
    assert "not readable by this process" in str(error)
    assert VARIABLE in str(error) and str(secret) in str(error)
    assert "chmod 600" in error.fix
    assert "unreadable-secret-value" not in str(error) + repr(error)


def test_a_file_that_became_unreadable_is_an_error_not_the_old_value(open_dir: Path) -> None:
    secret = open_dir / "token"
    secret.write_text("was-readable")
    store = store_for(secret)
    settle()
    store.fetch()
    secret.chmod(0o000)
    with unprivileged(), pytest.raises(BackendError, match="not readable"):
        store.fetch()


def test_directory_lists_its_keys_never_their_values(tmp_path: Path) -> None:
    volume = SecretVolume(tmp_path / "volume")
    volume.write({"token": "dir-secret-value", "username": "bob"})
    error = fail(store_for(volume.root))
    assert "is a directory" in str(error)
    assert "it holds: token, username" in str(error)
    assert "dir-secret-value" not in str(error)
    assert "..data" not in str(error)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    error = fail(store_for(fifo))
    assert "not a regular file" in str(error)


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("\n")
    error = fail(store_for(secret))
    assert error.step == "read"
    assert "is empty" in str(error) and str(secret) in str(error)


def test_non_utf8_file_is_a_parse_error_without_the_bytes(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_bytes(b"\xff\xfebinary-secret")
    error = fail(store_for(secret))
    assert error.step == "parse"
    assert "not UTF-8" in str(error)
    assert "binary-secret" not in str(error)


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "token"
    big.write_bytes(b"x" * (1024 * 1024 + 1))
    assert "larger than 1024 KiB" in str(fail(store_for(big)))


# --- advice ------------------------------------------------------------------------------------


def test_group_or_world_readable_file_gets_advice(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("shared-secret")
    secret.chmod(0o644)
    [advice] = store_for(secret).advice()
    assert "0644" in advice.detail and str(secret) in advice.detail
    assert "chmod 600" in advice.fix and "defaultMode: 0400" in advice.fix
    assert "shared-secret" not in advice.detail + advice.fix


def test_owner_only_file_gets_no_advice(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("private-secret")
    secret.chmod(0o600)
    assert store_for(secret).advice() == []


def test_advice_follows_the_kubernetes_links_to_the_real_mode(tmp_path: Path) -> None:
    loose = SecretVolume(tmp_path / "loose")  # Kubernetes' default defaultMode, 0644
    loose.write({"token": "volume-secret"})
    [advice] = store_for(loose.path("token")).advice()
    assert "0644" in advice.detail
    assert str(loose.data_dir / "token") in advice.fix

    tight = SecretVolume(tmp_path / "tight", mode=0o400)
    tight.write({"token": "volume-secret"})
    assert store_for(tight.path("token")).advice() == []


def test_missing_file_gets_no_advice(tmp_path: Path) -> None:
    assert store_for(tmp_path / "absent").advice() == []


def test_repr_shows_the_path(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("repr-secret-value")
    store = store_for(secret)
    store.fetch()
    assert str(secret) in repr(store)
    assert "repr-secret-value" not in repr(store) + repr(store.settings)


def test_passes_the_store_contract_kit(tmp_path: Path) -> None:
    volume = SecretVolume(tmp_path / "volume", mode=0o400)
    volume.write({"token": "contract-kit-file-secret"})
    check_store(
        FileStore,
        {VARIABLE: str(volume.path("token"))},
        "contract-kit-file-secret",
        failing_env={VARIABLE: str(volume.root)},  # a directory: listed, never read
    )
