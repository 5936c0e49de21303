"""The order of `doctor`'s checks that SPEC §9 prescribes, written out independently of the code."""

from __future__ import annotations

CHECK_ORDER = [
    "configuration",
    "backend_reachable",
    "login",
    "secret_read",
    "secret_format",
    "auth_header",
    "tracking_auth",
    "entry_point",
    "overrides",
    "allowlist",
]
