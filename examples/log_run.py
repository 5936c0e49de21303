"""An ordinary MLflow script: nothing in it knows about secret stores or credentials.

It logs a run to the experiment MLFLOW_EXPERIMENT_NAME names (MLflow creates it if needed).
The store examples run it with MLFLOW_TRACKING_AUTH=mlflow_secrets_auth, so every call below is
authenticated with the credential the plugin fetched from the store.
"""

from __future__ import annotations

import mlflow


def main() -> None:
    with mlflow.start_run(run_name="example-run") as run:
        mlflow.log_params({"learning_rate": 0.01, "epochs": 3})
        for epoch, loss in enumerate([0.9, 0.5, 0.3]):
            mlflow.log_metric("loss", loss, step=epoch)
        mlflow.log_text("final loss: 0.3\n", "report.txt")
    experiment = mlflow.get_experiment(run.info.experiment_id)
    print(f"run {run.info.run_id} in experiment {experiment.name}")


if __name__ == "__main__":
    main()
