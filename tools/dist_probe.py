"""Run inside a fresh venv holding only the wheel (and one extra): report what a user gets.

``check_dist.py`` runs it with ``python -I`` (no PYTHONPATH, no checkout on sys.path) and judges
the JSON it prints: where the package was imported from, which SDKs importing it and loading its
entry points pulled in (none should be), the entry points, each store's SDK (found or not) and
which of the named distributions are installed. Standard library only.

Usage: python -I dist_probe.py DISTRIBUTION [DISTRIBUTION ...]
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import sys
from typing import Any

#: Top-level modules that importing the package must not load (SPEC: importing is cheap).
HEAVY = ("hvac", "boto3", "botocore", "azure", "google", "grpc", "mlflow", "requests")
GROUPS = ("mlflow.request_auth_provider", "mlflow_secrets_auth.backends")
OURS = "mlflow-secrets-auth"


def loaded() -> list[str]:
    return sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY))


def importable(module: str) -> bool:
    """Whether ``module`` can be found, without importing it (parents are imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def main() -> None:
    report: dict[str, Any] = {"errors": []}
    import mlflow_secrets_auth

    report["module_file"] = mlflow_secrets_auth.__file__
    report["version"] = mlflow_secrets_auth.__version__
    report["loaded_after_import"] = loaded()

    report["entry_points"] = {}
    stores: dict[str, dict[str, Any]] = {}
    for group in GROUPS:
        names = []
        for entry in importlib.metadata.entry_points(group=group):
            if entry.dist is None or entry.dist.metadata["Name"] != OURS:
                continue
            try:
                target = entry.load()
            except Exception as error:  # every failure is reported by name
                report["errors"].append(f"{group}:{entry.name} did not load: {error!r}")
                continue
            names.append(entry.name)
            sdk = getattr(target, "sdk_module", None)
            if group == GROUPS[1] and sdk:
                install = getattr(target, "sdk_install", "") or ""
                match = re.fullmatch(rf"{re.escape(OURS)}\[(\w+)\]", install)
                stores[entry.name] = {
                    "sdk_module": sdk,
                    "extra": match.group(1) if match else None,
                    "sdk_found": None,  # looked up below, once nothing more is measured
                }
        report["entry_points"][group] = sorted(names)
    report["loaded_after_entry_points"] = loaded()
    for store in stores.values():
        store["sdk_found"] = importable(store["sdk_module"])
    report["stores"] = stores

    dists: dict[str, str | None] = {}
    for name in sys.argv[1:]:
        try:
            dists[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            dists[name] = None
    report["dists"] = dists
    print(json.dumps(report))


if __name__ == "__main__":
    main()
