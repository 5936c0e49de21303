"""The exec store with real commands: small Python scripts run by this interpreter, and
coreutils' printf. No shell is involved anywhere, and the tests prove it."""

from __future__ import annotations

import json
import os
import shlex
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mlflow_secrets_auth.backends.base import CommonSettings
from mlflow_secrets_auth.backends.exec import ExecSettings, ExecStore, rfc3339_epoch
from mlflow_secrets_auth.errors import (
    BackendError,
    ConfigurationError,
    IncompleteConfigurationError,
)
from mlflow_secrets_auth.testing import check_store

from support.exec_scripts import program_name, read_pid, running, script_command, wait_gone

VARIABLE = "MLFLOW_EXEC_COMMAND"


def common(timeout_sec: float = 10.0) -> CommonSettings:
    return CommonSettings(
        backend_name="exec", auth_mode="auto", ttl_sec=300.0, timeout_sec=timeout_sec
    )


def store_for(command: str, timeout_sec: float = 10.0) -> ExecStore:
    return ExecStore(ExecStore.load_settings({VARIABLE: command}, common(timeout_sec)))


def fail(store: ExecStore) -> BackendError:
    with pytest.raises(BackendError) as info:
        store.fetch()
    return info.value


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


# --- settings ----------------------------------------------------------------------------------


def test_declares_its_variable_and_profile_key() -> None:
    assert ExecStore.name == "exec"
    assert ExecStore.prefix == "MLFLOW_EXEC"
    assert [(v.name, v.key) for v in ExecStore.variables] == [(VARIABLE, "command")]
    assert ExecStore.sdk_module is None


def test_unset_command_is_incomplete_configuration() -> None:
    with pytest.raises(IncompleteConfigurationError) as info:
        ExecStore.load_settings({}, common())
    assert info.value.missing == (VARIABLE,)


@pytest.mark.parametrize("command", ["op read 'op://vault/unbalanced", "tool --key=abc\\"])
def test_malformed_command_line_names_the_variable_never_the_text(command: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ExecStore.load_settings({VARIABLE: command}, common())
    assert info.value.variable == VARIABLE
    assert VARIABLE in str(info.value)
    for part in ("op://vault", "unbalanced", "--key=abc"):
        assert part not in str(info.value)


def test_a_command_line_without_a_program_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=VARIABLE):
        ExecStore.load_settings({VARIABLE: "''"}, common())


def test_repr_and_describe_name_only_the_program_and_argument_count() -> None:
    store = store_for("/opt/tools/vault-helper read --password=hunter2-secret kv/mlflow")
    settings = store.settings
    assert isinstance(settings, ExecSettings)
    assert settings.argv[0] == "/opt/tools/vault-helper"
    assert settings.describe() == "the command vault-helper with 3 arguments"
    for text in (repr(settings), repr(store), str(settings), settings.identity):
        assert "hunter2-secret" not in text
        assert "kv/mlflow" not in text
    assert "vault-helper" in repr(store)
    assert settings.timeout_sec == 10.0


def test_identity_tells_command_lines_apart_and_equal_ones_together() -> None:
    one = store_for("op read op://vault/a").settings
    same = store_for("op   read 'op://vault/a'").settings  # same argv, different spelling
    other = store_for("op read op://vault/b").settings
    assert one.identity == same.identity
    assert one.identity != other.identity
    assert one.identity.startswith("exec:op#")
    assert one == same and hash(one) == hash(same)


# --- output formats ----------------------------------------------------------------------------


def test_plain_output_is_the_payload(tmp_path: Path) -> None:
    command = script_command(tmp_path, "plain", "print('plain-token-from-a-cli')\n")
    fetched = store_for(command).fetch()
    assert fetched.payload == "plain-token-from-a-cli"
    assert fetched.expires_at is None
    assert "plain-token" not in repr(fetched)


def test_json_output_is_the_payload(tmp_path: Path) -> None:
    command = script_command(
        tmp_path,
        "basic",
        """
        import json
        print(json.dumps({"username": "alice", "password": "pw-from-doppler"}))
        """,
    )
    fetched = store_for(command).fetch()
    assert fetched.payload == {"username": "alice", "password": "pw-from-doppler"}
    assert fetched.expires_at is None


def test_json_with_expires_at_two_seconds_away_carries_the_expiry(tmp_path: Path) -> None:
    side = tmp_path / "expires.txt"
    command = script_command(
        tmp_path,
        "expiring",
        f"""
        import json, time
        from datetime import datetime, timezone
        expires = time.time() + 2
        open({str(side)!r}, "w").write(repr(expires))
        stamp = datetime.fromtimestamp(expires, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        print(json.dumps({{"token": "short-lived-token", "expires_at": stamp}}))
        """,
    )
    fetched = store_for(command).fetch()
    assert fetched.payload == {"token": "short-lived-token"}  # expires_at is not the secret's
    printed = float(side.read_text())
    assert fetched.expires_at == pytest.approx(printed, abs=1e-5)


def test_kubernetes_exec_credential(tmp_path: Path) -> None:
    expiry = int(time.time()) + 3600
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {
            "token": "k8s-exec-credential-token",
            "expirationTimestamp": rfc3339(expiry),
        },
    }
    command = script_command(tmp_path, "kubelogin", f"print({json.dumps(credential)!r})\n")
    fetched = store_for(command).fetch()
    assert fetched.payload == {"token": "k8s-exec-credential-token"}
    assert fetched.expires_at == expiry


def test_exec_credential_without_expiry_and_v1beta1(tmp_path: Path) -> None:
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": "beta-token"},
    }
    command = script_command(tmp_path, "beta", f"print({json.dumps(credential)!r})\n")
    fetched = store_for(command).fetch()
    assert fetched.payload == {"token": "beta-token"}
    assert fetched.expires_at is None


def test_exec_credential_with_only_a_client_certificate_is_refused(tmp_path: Path) -> None:
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"clientCertificateData": "CERT", "clientKeyData": "private-key-material"},
    }
    command = script_command(tmp_path, "certs", f"print({json.dumps(credential)!r})\n")
    error = fail(store_for(command))
    assert error.step == "parse"
    assert "no status.token" in str(error)
    assert "private-key-material" not in str(error)


@pytest.mark.parametrize("stamp", ["tomorrow", "2030-01-31T12:00:00", 1893456000])
def test_malformed_expires_at_is_a_parse_error(tmp_path: Path, stamp: object) -> None:
    body = json.dumps({"token": "tok-with-bad-expiry", "expires_at": stamp})
    command = script_command(tmp_path, "bad_expiry", f"print({body!r})\n")
    error = fail(store_for(command))
    assert error.step == "parse"
    assert "RFC 3339" in str(error)
    assert "tok-with-bad-expiry" not in str(error)


def test_an_already_expired_credential_is_an_error(tmp_path: Path) -> None:
    body = json.dumps({"token": "stale-token", "expires_at": "2001-01-01T00:00:00Z"})
    command = script_command(tmp_path, "expired", f"print({body!r})\n")
    error = fail(store_for(command))
    assert "expired at 2001-01-01T00:00:00+00:00" in str(error)
    assert "stale-token" not in str(error)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-01-31T12:00:00Z", 1896091200.0),
        ("2030-01-31t12:00:00z", 1896091200.0),
        ("2030-01-31T14:30:00+02:30", 1896091200.0),
        ("2030-01-31T07:00:00-05:00", 1896091200.0),
        ("2030-01-31T12:00:00.123456789Z", 1896091200.123456789),
        ("2030-01-31 12:00:00.5Z", 1896091200.5),
    ],
)
def test_rfc3339(text: str, expected: float) -> None:
    assert rfc3339_epoch(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "text", ["2030-01-31T12:00:00", "2030-02-30T12:00:00Z", "2030-01-31", "12:00:00Z", ""]
)
def test_rfc3339_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not an RFC 3339 time"):
        rfc3339_epoch(text)


# --- no shell ----------------------------------------------------------------------------------


def test_command_is_never_run_through_a_shell() -> None:
    fetched = store_for("printf %s $HOME;id").fetch()
    assert fetched.payload == "$HOME;id"


def test_quotes_are_split_like_a_posix_shell(tmp_path: Path) -> None:
    command = script_command(tmp_path, "argv", "import sys, json; print(json.dumps(sys.argv[1:]))")
    fetched = store_for(command + " 'two words' \"a|b\" c\\ d '$(id)'").fetch()
    assert fetched.payload == '["two words", "a|b", "c d", "$(id)"]'


def test_the_command_gets_no_standard_input(tmp_path: Path) -> None:
    command = script_command(tmp_path, "stdin", "import sys; print(repr(sys.stdin.read()))")
    assert store_for(command).fetch().payload == "''"


# --- failures ----------------------------------------------------------------------------------


def test_non_zero_exit_names_program_code_and_last_stderr_line_never_stdout(
    tmp_path: Path,
) -> None:
    command = script_command(
        tmp_path,
        "failing",
        """
        import sys
        print("stdout-secret-must-not-appear")
        sys.stderr.write("[ERROR] first problem\\n")
        sys.stderr.write("[ERROR] you are not signed in: run `op signin`\\n\\n")
        sys.exit(3)
        """,
    )
    error = fail(store_for(command + " --password=argument-secret"))
    text = str(error)
    assert error.step == "read"
    assert f"the command {program_name()} exited with code 3" in text
    assert "last line of standard error: [ERROR] you are not signed in: run `op signin`" in text
    assert "first problem" not in text
    assert "stdout-secret-must-not-appear" not in text + repr(error) + repr(vars(error))
    assert "argument-secret" not in text
    assert str(tmp_path) not in text  # only the program's name, not its arguments


def test_long_stderr_line_is_bounded(tmp_path: Path) -> None:
    command = script_command(
        tmp_path, "chatty", "import sys; sys.stderr.write('e' * 5000 + '\\x1b[31m'); sys.exit(1)"
    )
    error = fail(store_for(command))
    assert "e" * 199 + "…" in str(error)
    assert "e" * 201 not in str(error)
    assert "\x1b" not in str(error)


def test_killed_by_a_signal_is_named(tmp_path: Path) -> None:
    command = script_command(
        tmp_path, "suicide", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    )
    assert "was killed by signal SIGTERM" in str(fail(store_for(command)))


def test_empty_output_is_an_error(tmp_path: Path) -> None:
    command = script_command(tmp_path, "silent", "print('   ')\n")
    error = fail(store_for(command))
    assert error.step == "read"
    assert f"the command {program_name()} succeeded but printed nothing" in str(error)
    assert VARIABLE in error.fix


def test_non_utf8_output_is_a_parse_error(tmp_path: Path) -> None:
    command = script_command(
        tmp_path, "binary", "import sys; sys.stdout.buffer.write(b'\\xff\\xfe')"
    )
    assert "not UTF-8" in str(fail(store_for(command)))


def test_runaway_output_is_refused(tmp_path: Path) -> None:
    command = script_command(
        tmp_path, "flood", "import sys; sys.stdout.write('x' * (3 * 1024 * 1024))"
    )
    assert "printed more than 1024 KiB" in str(fail(store_for(command)))


def test_missing_program_names_it_and_the_variable() -> None:
    error = fail(store_for("no-such-secret-cli-4821 read --token=abc"))
    assert error.step == "connect"
    assert "no-such-secret-cli-4821" in str(error) and VARIABLE in str(error)
    assert "not found on PATH" in str(error)
    assert "--token=abc" not in str(error)


def test_non_executable_program_is_named(tmp_path: Path) -> None:
    script = tmp_path / "helper"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    error = fail(store_for(shlex.quote(str(script))))
    assert "helper named in MLFLOW_EXEC_COMMAND is not executable" in str(error)


def test_hanging_command_and_its_children_are_killed_at_the_time_bound(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    command = script_command(
        tmp_path,
        "hang",
        f"""
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(pids)!r} + ".child", "w").write(str(child.pid))
        open({str(pids)!r} + ".main", "w").write(str(os.getpid()))
        print("partial-output-before-hanging", flush=True)
        time.sleep(120)
        """,
    )
    error = fail(store_for(command, timeout_sec=2.0))
    assert error.step == "connect"
    assert f"the command {program_name()} did not finish within 2 s" in str(error)
    assert "MLFLOW_SECRETS_TIMEOUT_SEC" in str(error)
    assert "partial-output" not in str(error)
    main_pid = read_pid(Path(f"{pids}.main"))
    child_pid = read_pid(Path(f"{pids}.child"))
    assert not running(main_pid)  # killed and reaped before fetch returned
    assert wait_gone(child_pid), "the command's child survived the kill"


def test_a_command_that_closes_its_output_and_hangs_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    command = script_command(
        tmp_path,
        "close_and_hang",
        f"""
        import os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        os.close(1)
        os.close(2)
        time.sleep(120)
        """,
    )
    error = fail(store_for(command, timeout_sec=2.0))
    assert "did not finish within 2 s" in str(error)
    assert not running(read_pid(pid_file))


def test_a_background_process_holding_the_output_is_bounded_too(tmp_path: Path) -> None:
    """A command that exits but leaves a daemon (its own session) holding standard output."""
    pid_file = tmp_path / "daemon.pid"
    command = script_command(
        tmp_path,
        "daemonize",
        f"""
        import subprocess, sys
        daemon = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
        )
        open({str(pid_file)!r}, "w").write(str(daemon.pid))
        print("token-printed-before-exit")
        """,
    )
    try:
        error = fail(store_for(command, timeout_sec=1.0))
        assert "exited with code 0 but a process it started kept its output open" in str(error)
        assert "token-printed-before-exit" not in str(error)
    finally:
        daemon = read_pid(pid_file)
        os.kill(daemon, signal.SIGKILL)
        assert wait_gone(daemon)


def test_every_fetch_runs_the_command_again(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    command = script_command(
        tmp_path,
        "counting",
        f"""
        from pathlib import Path
        p = Path({str(counter)!r})
        n = int(p.read_text()) + 1 if p.exists() else 1
        p.write_text(str(n))
        print(f"token-{{n}}")
        """,
    )
    store = store_for(command)
    assert [store.fetch().payload for _ in range(3)] == ["token-1", "token-2", "token-3"]


def test_passes_the_store_contract_kit(tmp_path: Path) -> None:
    failing = script_command(
        tmp_path,
        "leaky_failure",
        """
        import sys
        print("contract-kit-exec-secret")
        sys.exit(1)
        """,
    )
    check_store(
        ExecStore,
        {VARIABLE: "printf %s contract-kit-exec-secret"},
        "contract-kit-exec-secret",
        failing_env={VARIABLE: failing},
        hanging_env={VARIABLE: "sleep 60"},
    )
