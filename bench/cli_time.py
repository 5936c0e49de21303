"""Wall time of the command line as a user meets it: a healthy ``doctor`` and ``info`` against a
local OpenBao, and ``--help``, each a fresh process, median of 5 (goals: doctor and info under
1 s on a 2-core machine, --help under 0.3 s). Printed, never asserted.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT

sys.path.insert(0, str(ROOT / "testbed"))
from support.openbao import OpenBaoServer, openbao_unavailable_reason

RUNS = 5
CLI = str(Path(sys.executable).with_name("mlflow-secrets-auth"))
# Whatever the shell running the benchmark has set must not change what is measured.
_CLEARED = ("MLFLOW_", "VAULT_", "AWS_", "AZURE_")


def wall_ms(args: list[str], env: dict[str, str], expected: int) -> list[float]:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True)
        samples.append((time.perf_counter() - start) * 1000)
        if done.returncode != expected:
            raise SystemExit(f"`{' '.join(args)}` exited {done.returncode}:\n{done.stdout}")
    return samples


def main() -> int:
    reason = openbao_unavailable_reason()
    if reason is not None:
        print(f"skipped: {reason}")
        return 0
    bao = OpenBaoServer().start()
    try:
        bao.write_secret("secret", "bench/cli", {"token": "bench-token-1234"})
        env = {k: v for k, v in os.environ.items() if not k.startswith(_CLEARED)}
        env.update(
            {
                "MLFLOW_SECRETS_AUTH_ENABLE": "vault",
                "VAULT_ADDR": bao.addr,
                "VAULT_TOKEN": bao.root_token,
                "MLFLOW_VAULT_SECRET_PATH": "secret/bench/cli",
                "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
                "MLFLOW_TRACKING_AUTH": "mlflow_secrets_auth",
                "NO_PROXY": "127.0.0.1,localhost",
            }
        )
        print(f"command line wall time, fresh process each, median of {RUNS} (min-max)")
        for args, goal in ((["doctor"], 1000), (["info"], 1000), (["--help"], 300)):
            samples = wall_ms(args, env, 0)
            median = statistics.median(samples)
            shown = " ".join(args)
            print(
                f"  mlflow-secrets-auth {shown:<8} {median:7.1f} ms  "
                f"({min(samples):.0f}-{max(samples):.0f}; goal < {goal} ms)"
            )
    finally:
        bao.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
