#!/usr/bin/env bash
# Vault's side of the GitHub Actions example. Run once as a Vault administrator (VAULT_ADDR and
# VAULT_TOKEN set), with MLFLOW_USERNAME and MLFLOW_PASSWORD set to the MLflow user's credential.
set -euo pipefail
cd "$(dirname "$0")"

# 1. A JWT auth mount that trusts GitHub's OIDC issuer (Vault fetches its keys).
if ! vault auth list -format=json | grep -q '"jwt-github/"'; then
    vault auth enable -path=jwt-github jwt
fi
vault write auth/jwt-github/config \
    oidc_discovery_url=https://token.actions.githubusercontent.com \
    bound_issuer=https://token.actions.githubusercontent.com

# 2. What the job may read.
vault policy write mlflow-trainer ../mlflow-trainer.hcl

# 3. Which jobs get that policy: tokens made for this audience, from pushes to main of one
#    repository. user_claim names the Vault entity: one per repository, not one per run.
vault write auth/jwt-github/role/mlflow-trainer-github - <<'JSON'
{
  "role_type": "jwt",
  "bound_audiences": ["https://vault.example.com"],
  "bound_claims": {
    "repository": "my-org/ml-training",
    "ref": "refs/heads/main"
  },
  "user_claim": "repository",
  "token_policies": ["mlflow-trainer"],
  "token_ttl": "15m",
  "token_max_ttl": "1h"
}
JSON

# 4. The MLflow credential (the password is read from stdin, so it is not in any command line).
printf '%s' "$MLFLOW_PASSWORD" |
    vault kv put secret/mlflow/training username="$MLFLOW_USERNAME" password=-
