"""Warm-cache cost per request: ``get_auth()`` + applying it, next to ``HTTPBasicAuth``.

The secret comes from a real OpenBao dev server (started here when the binary is available,
otherwise the figure is skipped with the reason). Goal (issue 2): within 2x of HTTPBasicAuth.
"""

from __future__ import annotations

import os
import sys

import requests
from requests.auth import HTTPBasicAuth

from _common import per_call_ns

BATCH = 20_000


def prepared_copies(n: int) -> list[requests.PreparedRequest]:
    base = requests.Request(
        "POST",
        "http://127.0.0.1:5000/api/2.0/mlflow/runs/log-metric",
        json={"run_id": "r", "key": "loss", "value": 0.1, "timestamp": 0, "step": 1},
    ).prepare()
    copies = []
    for _ in range(n):
        prep = base.copy()
        prep.hooks = {event: [] for event in base.hooks}  # copy() shares the hooks dict
        copies.append(prep)
    return copies


def main() -> int:
    from tests.support.openbao import OpenBaoServer, openbao_unavailable_reason

    reason = openbao_unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    with OpenBaoServer() as bao:
        bao.write_secret("secret", "bench/auth", {"username": "bench", "password": "pw-123"})
        os.environ.update(
            {
                "MLFLOW_SECRETS_AUTH_ENABLE": "vault",
                "VAULT_ADDR": bao.addr,
                "VAULT_TOKEN": bao.root_token,
                "MLFLOW_VAULT_SECRET_PATH": "secret/bench/auth",
                "MLFLOW_VAULT_AUTH_MODE": "basic",
                "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
            }
        )
        from mlflow_secrets_auth import SecretsAuthProviderFactory

        factory = SecretsAuthProviderFactory()
        factory.get_auth()(prepared_copies(1)[0])  # warm: one real Vault read

        def ours(n: int) -> None:
            for prep in prepared_copies_ours[:n]:
                factory.get_auth()(prep)

        def basic_construct_and_apply(n: int) -> None:
            for prep in prepared_copies_basic[:n]:
                HTTPBasicAuth("bench", "pw-123")(prep)

        basic = HTTPBasicAuth("bench", "pw-123")

        def basic_apply_only(n: int) -> None:
            for prep in prepared_copies_basic[:n]:
                basic(prep)

        results = {}
        for name, fn in (
            ("mlflow_secrets_auth get_auth()+apply", ours),
            ("HTTPBasicAuth(...) construct+apply", basic_construct_and_apply),
            ("HTTPBasicAuth apply only", basic_apply_only),
        ):
            samples = []
            for _ in range(5):
                prepared_copies_ours = prepared_copies(BATCH)
                prepared_copies_basic = prepared_copies_ours
                samples.append(per_call_ns(fn, BATCH, repeats=1))
            results[name] = sorted(samples)[len(samples) // 2]

        ours_ns = results["mlflow_secrets_auth get_auth()+apply"]
        version = sys.version.split()[0]
        print(f"warm per-request cost, median of 5 batches of {BATCH} (Python {version})")
        for name, ns in results.items():
            print(f"  {name:<40} {ns / 1000:7.2f} µs")
        for name in ("HTTPBasicAuth(...) construct+apply", "HTTPBasicAuth apply only"):
            print(f"  ratio vs {name:<31} {ours_ns / results[name]:7.2f}x  (goal <= 2x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
