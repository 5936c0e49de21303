"""Import cost: ``import mlflow_secrets_auth`` next to ``import requests``, in fresh interpreters,
and which backend SDK or MLflow modules the import (and MLflow's instantiation of the factory)
pulls in. Goal (issue 2): no SDK module loaded."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

RUNS = 15
HEAVY = ("hvac", "boto3", "botocore", "azure", "mlflow", "requests")
PROBE = (
    "import sys, json, mlflow_secrets_auth\n"
    "factory = mlflow_secrets_auth.SecretsAuthProviderFactory()\n"
    "factory.get_name()\n"
    f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))\n"
)


def wall_ms(code: str) -> float:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> int:
    baseline = wall_ms("pass")
    ours = wall_ms("import mlflow_secrets_auth")
    requests_ms = wall_ms("import requests")
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", PROBE], check=True, capture_output=True, text=True
        ).stdout
    )
    print(f"interpreter start-up, median of {RUNS} fresh processes")
    print(f"  python -c pass                              {baseline:7.1f} ms")
    print(f"  python -c 'import mlflow_secrets_auth'      {ours:7.1f} ms  (+{ours - baseline:.1f})")
    print(
        f"  python -c 'import requests'                 {requests_ms:7.1f} ms  "
        f"(+{requests_ms - baseline:.1f})"
    )
    shown = ", ".join(loaded) if loaded else "none"
    print(
        f"  heavy modules after import + factory: {shown}  (goal: none of hvac/boto3/azure/mlflow)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
