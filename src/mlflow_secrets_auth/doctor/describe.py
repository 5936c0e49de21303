"""How a backend's settings are named in check text.

Configuration, the credential chain and the dry run all speak of the same backend; sharing
the wording keeps their details consistent. Only locations, modes and user names appear here.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..modes import mode_in_effect
from ..settings import AwsSettings, BackendSettings, VaultSettings


def _describe(settings: BackendSettings, env: Mapping[str, str]) -> str:
    mode = "auth mode " + mode_in_effect(env, settings.backend_name, settings.auth_mode)
    if isinstance(settings, VaultSettings):
        ns = f", namespace {settings.namespace}" if settings.namespace else ""
        return (
            f"Vault at {settings.addr}{ns}, secret {settings.secret_path}, "
            f"{_vault_login(settings)}, {mode}"
        )
    if isinstance(settings, AwsSettings):
        return (
            f"AWS Secrets Manager secret {settings.secret_id} ({settings.version_stage}) in "
            f"region {settings.region or '(from the AWS profile)'}, credentials from boto3's "
            f"chain, {mode}"
        )
    return (
        f"Azure Key Vault {settings.vault_url}, secret {settings.secret_name} "
        f"(version {settings.secret_version or 'latest'}), credential DefaultAzureCredential, "
        f"{mode}"
    )


def _vault_login(settings: VaultSettings) -> str:
    method = settings.login_method
    if method == "token":
        return "token login (VAULT_TOKEN)"
    if method == "approle":
        return f"AppRole login at auth/{settings.approle_mount} (VAULT_ROLE_ID, VAULT_SECRET_ID)"
    return f"Kubernetes login as role {settings.k8s_role} at auth/{settings.k8s_mount}"


def _target(settings: BackendSettings) -> str:
    if isinstance(settings, VaultSettings):
        return f"Vault at {settings.addr}"
    if isinstance(settings, AwsSettings):
        return f"AWS Secrets Manager in region {settings.region or '(from the AWS profile)'}"
    return f"Key Vault at {settings.vault_url}"


def _login_passed(settings: BackendSettings) -> str:
    if isinstance(settings, VaultSettings):
        if settings.login_method == "token":
            return "token login (VAULT_TOKEN): Vault accepted the token for the read"
        return f"{_vault_login(settings)} succeeded"
    if isinstance(settings, AwsSettings):
        return "AWS credentials from boto3's chain were accepted"
    return "DefaultAzureCredential obtained a token that Key Vault accepted"


def _secret_name(settings: BackendSettings) -> str:
    if isinstance(settings, VaultSettings):
        return settings.secret_path
    if isinstance(settings, AwsSettings):
        return f"{settings.secret_id} ({settings.version_stage})"
    return settings.secret_name
