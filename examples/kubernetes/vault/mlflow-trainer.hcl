# The Vault policy of the training Job's role: read the MLflow credential, nothing else.
# (KV v2 puts data/ after the mount; MLFLOW_VAULT_SECRET_PATH is secret/mlflow/training.)
path "secret/data/mlflow/training" {
  capabilities = ["read"]
}
