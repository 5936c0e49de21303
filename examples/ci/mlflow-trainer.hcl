# The Vault policy of the CI jobs' roles: read the MLflow credential, nothing else.
# (KV v2 puts data/ after the mount; MLFLOW_VAULT_SECRET_PATH is secret/mlflow/training.)
path "secret/data/mlflow/training" {
  capabilities = ["read"]
}
