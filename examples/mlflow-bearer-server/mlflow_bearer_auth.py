"""An MLflow `authorization_function`: bearer tokens (and `X-Api-Key`) on top of basic auth.

MLflow's basic-auth app (`mlflow server --app-name basic-auth`) accepts only a username and a
password. Point its `authorization_function` at this module and it also accepts API tokens, so a
client can send `Authorization: Bearer <token>` (what mlflow-secrets-auth sends for a token
secret) or `X-Api-Key: <token>`:

    [mlflow]
    authorization_function = mlflow_bearer_auth:authenticate

The server imports the module by name: put this file's directory on the server's PYTHONPATH.

Tokens live in a JSON file named by MLFLOW_BEARER_TOKENS_FILE, mapping the SHA-256 of each token
(hex) to an MLflow username: the file holds no usable token, only digests. It is read again
on every request, so tokens are issued and revoked without a restart:

    python mlflow_bearer_auth.py issue USERNAME    # prints a new token once, stores its digest
    python mlflow_bearer_auth.py revoke USERNAME   # removes every token of USERNAME

A request without a token goes to MLflow's own basic-auth check unchanged. A token is accepted
only for an existing MLflow user; MLflow then applies that user's permissions as usual.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Response
    from werkzeug.datastructures import Authorization

TOKENS_FILE_ENV = "MLFLOW_BEARER_TOKENS_FILE"
API_KEY_HEADER = "X-Api-Key"


def token_digest(token: str) -> str:
    """What the tokens file stores for `token`."""
    return hashlib.sha256(token.encode()).hexdigest()


def read_digests(path: str) -> dict[str, str]:
    """The file's digest -> username mapping; empty when it is missing or not such a mapping."""
    try:
        with open(path, encoding="utf-8") as fh:
            data: Any = json.load(fh)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items()}


def _tokens() -> dict[str, str]:
    """The digest -> username mapping, read on every request (a small file: one open and one
    JSON parse) so that a rewrite takes effect at once; empty when unset, missing or unreadable."""
    path = os.environ.get(TOKENS_FILE_ENV)
    return read_digests(path) if path else {}


def _presented_token() -> str | None:
    """The bearer token or API key on the current request, if it carries one."""
    from flask import request

    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    api_key = request.headers.get(API_KEY_HEADER)
    return api_key.strip() if api_key is not None else None


def authenticate() -> Authorization | Response:
    """Authenticate the current request: an `Authorization` naming the user, else a 401."""
    # Imported here, inside the server, so that `issue`/`revoke` need no auth store.
    from mlflow.server.auth import (
        authenticate_request_basic_auth,
        make_basic_auth_response,
        store,
    )
    from werkzeug.datastructures import Authorization

    token = _presented_token()
    if token is None:
        return authenticate_request_basic_auth()
    username = _tokens().get(token_digest(token)) if token else None
    # A token of a deleted user is as unknown as a wrong token (MLflow would otherwise answer
    # 404 "user not found" from inside its permission checks).
    if username is None or not store.has_user(username):
        return make_basic_auth_response()
    # MLflow reads only `.username` from the result (and requires this exact type).
    return Authorization("basic", {"username": username, "password": ""})


# --- managing the tokens file ------------------------------------------------------------------


def write_digests(path: Path, digests: Mapping[str, str]) -> None:
    """Replace the file's content atomically (readers see the old or the new file, never half)."""
    fd, tmp_name = tempfile.mkstemp(prefix=".tokens-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(dict(digests), fh, indent=1)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_tokens(path: Path, tokens: Mapping[str, str]) -> None:
    """Make `tokens` (token -> username) the only valid tokens."""
    write_digests(path, {token_digest(t): user for t, user in tokens.items()})


def issue(path: Path, username: str) -> str:
    """A new random token for `username`, added to the file; the caller shows it once."""
    token = secrets.token_urlsafe(32)
    digests = read_digests(str(path)) if path.exists() else {}
    digests[token_digest(token)] = username
    write_digests(path, digests)
    return token


def revoke(path: Path, username: str) -> int:
    """Remove every token of `username`; how many there were."""
    digests = read_digests(str(path)) if path.exists() else {}
    kept = {d: u for d, u in digests.items() if u != username}
    write_digests(path, kept)
    return len(digests) - len(kept)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Issue or revoke MLflow API tokens.")
    parser.add_argument("action", choices=["issue", "revoke"])
    parser.add_argument("username")
    parser.add_argument(
        "--tokens-file",
        default=os.environ.get(TOKENS_FILE_ENV),
        help=f"the server's tokens file (default ${TOKENS_FILE_ENV})",
    )
    args = parser.parse_args(argv)
    if not args.tokens_file:
        parser.error(f"give --tokens-file or set {TOKENS_FILE_ENV}")
    path = Path(args.tokens_file)
    if args.action == "issue":
        print(issue(path, args.username))
    else:
        print(f"revoked {revoke(path, args.username)} token(s) of {args.username}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
