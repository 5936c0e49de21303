#!/usr/bin/env bash
# Vault's side of the Kubernetes example. Run once as a Vault administrator (VAULT_ADDR and
# VAULT_TOKEN set), with MLFLOW_USERNAME and MLFLOW_PASSWORD set to the MLflow user's credential.
set -euo pipefail
cd "$(dirname "$0")"

# Where Vault reaches the Kubernetes API to review a pod's token (TokenReview). A Vault running in
# the cluster needs nothing more: it uses its own service account's CA and token for the review
# (the Vault Helm chart grants that account system:auth-delegator). A Vault outside the cluster
# also needs the API's CA certificate and a token allowed to review others (see README.md):
# set KUBERNETES_CA_CERT and TOKEN_REVIEWER_JWT_FILE to those files.
KUBERNETES_HOST=${KUBERNETES_HOST:-https://kubernetes.default.svc:443}
config=(kubernetes_host="$KUBERNETES_HOST")
if [ -n "${KUBERNETES_CA_CERT:-}" ]; then
    config+=(
        kubernetes_ca_cert=@"$KUBERNETES_CA_CERT"
        token_reviewer_jwt=@"${TOKEN_REVIEWER_JWT_FILE:?with KUBERNETES_CA_CERT, set this too}"
        disable_local_ca_jwt=true
    )
fi

# 1. Kubernetes login, pointed at the cluster.
if ! vault auth list -format=json | grep -q '"kubernetes/"'; then
    vault auth enable kubernetes
fi
vault write auth/kubernetes/config "${config[@]}"

# 2. What the Job may read.
vault policy write mlflow-trainer mlflow-trainer.hcl

# 3. Who gets that policy: tokens of service account ml/mlflow-trainer made for audience "vault".
vault write auth/kubernetes/role/mlflow-trainer \
    bound_service_account_names=mlflow-trainer \
    bound_service_account_namespaces=ml \
    audience=vault \
    token_policies=mlflow-trainer \
    token_ttl=1h \
    token_max_ttl=4h

# 4. The MLflow credential (the password is read from stdin, so it is not in any command line).
printf '%s' "$MLFLOW_PASSWORD" |
    vault kv put secret/mlflow/training username="$MLFLOW_USERNAME" password=-
