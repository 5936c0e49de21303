"""Turn a low-level network failure into words a user can act on (field notes §6)."""

from __future__ import annotations

import socket
import ssl


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
        if current is None and seen[-1].args and isinstance(seen[-1].args[0], BaseException):
            current = seen[-1].args[0]
    return seen


def classify(error: BaseException) -> str:
    """One of: dns, refused, tls, timeout, proxy, network."""
    text = " ".join(f"{type(e).__name__}: {e}" for e in _chain(error)).lower()
    chain = _chain(error)
    # A timeout during the TLS handshake mentions ssl too: it is a timeout, not a trust problem.
    if "timeout" in text or "timed out" in text:
        return "timeout"
    if any(isinstance(e, ssl.SSLError) for e in chain) or "ssl" in text or "certificate" in text:
        return "tls"
    if any(isinstance(e, socket.gaierror) for e in chain) or any(
        marker in text
        for marker in (
            "name or service not known",
            "nodename nor servname",
            "failed to resolve",
            "name resolution",
            "getaddrinfo",
        )
    ):
        return "dns"
    if "proxy" in text:
        return "proxy"
    if "refused" in text:
        return "refused"
    return "network"


def explain(error: BaseException, target: str, timeout: float) -> tuple[str, str]:
    """(what happened, what to check) for a failure to reach ``target``."""
    kind = classify(error)
    if kind == "tls":
        return (
            f"TLS verification failed for {target}",
            "that the server certificate is trusted: point the CA variable (VAULT_CACERT, "
            "AWS_CA_BUNDLE or REQUESTS_CA_BUNDLE) at your corporate CA bundle",
        )
    if kind == "timeout":
        return (
            f"{target} did not answer within {timeout:g}s",
            "network path, firewall and proxy settings; raise MLFLOW_SECRETS_TIMEOUT_SEC if the "
            "service is just slow",
        )
    if kind == "dns":
        return (
            f"the host name of {target} does not resolve (DNS)",
            "the address for typos, and DNS/VPN configuration",
        )
    if kind == "proxy":
        return (
            f"the proxy refused or failed the connection to {target}",
            "HTTPS_PROXY/HTTP_PROXY/NO_PROXY",
        )
    if kind == "refused":
        return (
            f"connection to {target} was refused",
            "that the service is running and listening on that host and port",
        )
    return (f"cannot reach {target} ({type(error).__name__})", "network connectivity")
