#!/usr/bin/env bash
# Vault's side of the GitLab CI example. Run once as a Vault administrator (VAULT_ADDR and
# VAULT_TOKEN set), with MLFLOW_USERNAME and MLFLOW_PASSWORD set to the MLflow user's credential.
# For a self-managed GitLab, replace https://gitlab.com with its URL.
set -euo pipefail
cd "$(dirname "$0")"

# 1. A JWT auth mount that trusts GitLab's ID tokens (Vault fetches GitLab's keys).
if ! vault auth list -format=json | grep -q '"jwt-gitlab/"'; then
    vault auth enable -path=jwt-gitlab jwt
fi
vault write auth/jwt-gitlab/config \
    oidc_discovery_url=https://gitlab.com \
    bound_issuer=https://gitlab.com

# 2. What the job may read.
vault policy write mlflow-trainer ../mlflow-trainer.hcl

# 3. Which jobs get that policy: tokens made for this audience, from the protected main branch
#    of one project. user_claim names the Vault entity: one per project, not one per pipeline.
vault write auth/jwt-gitlab/role/mlflow-trainer-gitlab - <<'JSON'
{
  "role_type": "jwt",
  "bound_audiences": ["https://vault.example.com"],
  "bound_claims": {
    "project_path": "my-group/ml-training",
    "ref": "main",
    "ref_type": "branch",
    "ref_protected": "true"
  },
  "user_claim": "project_path",
  "token_policies": ["mlflow-trainer"],
  "token_ttl": "15m",
  "token_max_ttl": "1h"
}
JSON

# 4. The MLflow credential (the password is read from stdin, so it is not in any command line).
printf '%s' "$MLFLOW_PASSWORD" |
    vault kv put secret/mlflow/training username="$MLFLOW_USERNAME" password=-
