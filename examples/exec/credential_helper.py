"""A credential helper for the exec store: prints the MLflow credential as JSON on stdout.

Stands in for the command you would really use: `op read ...` (1Password), `doppler secrets get`,
`vault kv get -format=json ...`, `gcloud secrets versions access ...`, or your own tool. Here it
reads a local file only its owner can read (argument 1), and adds `expires_at`, 15 minutes
ahead: the plugin runs the command again before that time, whatever its cache TTL.

Only the secret goes to stdout; messages go to stderr (its last line may appear in an error).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: credential_helper.py CREDENTIAL_FILE", file=sys.stderr)
        return 2
    credential = json.loads(Path(argv[1]).read_text())
    expires = datetime.now(timezone.utc) + timedelta(minutes=15)
    credential["expires_at"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    print(json.dumps(credential))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
