"""An ordinary MLflow training script: nothing in it knows about secret stores.

The demo runs it with MLFLOW_TRACKING_AUTH=mlflow_secrets_auth, and every call below is
authenticated with the credential the plugin fetched from Vault.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
from mlflow import MlflowClient


def main() -> None:
    mlflow.set_experiment("demo-experiment")
    with mlflow.start_run(run_name="demo-run") as run:
        mlflow.log_params({"learning_rate": 0.01, "epochs": 3})
        for epoch, loss in enumerate([0.9, 0.5, 0.3]):
            mlflow.log_metric("loss", loss, step=epoch)
        with tempfile.TemporaryDirectory() as folder:
            report = Path(folder) / "report.txt"
            report.write_text("final loss: 0.3\n")
            mlflow.log_artifact(str(report))
    client = MlflowClient()
    name = "demo-model"
    if not client.search_registered_models(filter_string=f"name='{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/report.txt", run_id=run.info.run_id
    )
    print(f"  run {run.info.run_id}: 2 params, 3 metrics, 1 artifact")
    print(f"  registered model {name!r} version {version.version}")


if __name__ == "__main__":
    main()
