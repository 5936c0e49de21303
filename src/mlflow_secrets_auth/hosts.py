"""Where credentials may go: allowlist parsing and the per-request origin decision (SPEC §5)."""

from __future__ import annotations

import ipaddress
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from .environment import decode, encode_names, raw_value
from .errors import ConfigurationError, HostNotAllowedError

ALLOWED_HOSTS_VARIABLE = "MLFLOW_SECRETS_ALLOWED_HOSTS"
ALLOW_HTTP_VARIABLE = "MLFLOW_SECRETS_ALLOW_HTTP"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_DECISION_CACHE_SIZE = 256


@dataclass(frozen=True)
class HostRule:
    """One allowlist entry: a host name or shell-style pattern, optionally pinned to a port."""

    pattern: str
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        return self.pattern == "*" or fnmatchcase(host, self.pattern)

    def __str__(self) -> str:
        host = f"[{self.pattern}]" if ":" in self.pattern else self.pattern
        return host if self.port is None else f"{host}:{self.port}"


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_rule(item: str) -> HostRule:
    """``host``, ``*.suffix``, ``host:port``, ``[v6]:port`` → HostRule (lowercased)."""
    text = item.strip().lower()
    port: int | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise _bad_rule(item)
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise _bad_rule(item)
        port = int(port_text)
    if not host or any(c in host for c in "/@ "):
        raise _bad_rule(item)
    return HostRule(host, port)


def _bad_rule(item: str) -> ConfigurationError:
    return ConfigurationError(
        f"{ALLOWED_HOSTS_VARIABLE} has an invalid entry {item.strip()!r}: use host names or "
        "patterns, optionally with a port, e.g. mlflow.example.com,*.corp.example,localhost:5000",
        variable=ALLOWED_HOSTS_VARIABLE,
    )


def parse_allowed_hosts(raw: str) -> tuple[HostRule, ...]:
    return tuple(parse_rule(item) for item in raw.split(",") if item.strip())


def origin_of(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        port = 0
    return Origin(scheme, host, port)


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 and ::1. Not ``*.localhost``: a resolver or a proxy may send
    such a name anywhere, so it is not proof that the traffic stays on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: The variables that put a proxy on the way. The runtime watches them and builds a new policy
#: (with no remembered decisions) when one changes, so a decision never outlives them.
PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")


def http_proxy_for(url: str) -> str | None:
    """The proxy the environment puts between us and a plain-http ``url``, if any.

    Such a proxy would read a credential in clear, which is why plain http is allowed to
    loopback only when no proxy is on the way (SPEC §5).
    """
    from urllib.request import getproxies

    from requests.utils import should_bypass_proxies

    proxies = getproxies()
    proxy = proxies.get("http") or proxies.get("all")
    if not proxy or should_bypass_proxies(url, no_proxy=None):
        return None
    return str(proxy)


_TRACKING_MODULE = "mlflow.tracking._tracking_service.utils"
_REGISTRY_MODULE = "mlflow.tracking._model_registry.utils"
_TRACKING_KEY, _REGISTRY_KEY = encode_names(("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"))


def uri_context() -> tuple[object, object]:
    """The tracking and registry URIs, undecoded: cheap enough to compute on every request.

    ``mlflow.set_tracking_uri``/``set_registry_uri`` store module globals, which win; otherwise
    MLflow falls back to the environment variables. Any other default MLflow computes (a local
    file or sqlite store, a registry that follows the tracking URI) names no extra host, so the
    allowlist is the same without paying for MLflow's full resolution on every request.
    MLflow itself is never imported here.
    """
    modules = sys.modules
    tracking = getattr(modules.get(_TRACKING_MODULE), "_tracking_uri", None) or raw_value(
        _TRACKING_KEY
    )
    registry = getattr(modules.get(_REGISTRY_MODULE), "_registry_uri", None) or raw_value(
        _REGISTRY_KEY
    )
    return (tracking, registry)


def _text(value: object) -> str | None:
    if not value:
        return None
    return decode(value) if isinstance(value, bytes) else str(value)


def mlflow_uris(context: tuple[object, object] | None = None) -> tuple[str | None, str | None]:
    """The tracking and registry URIs that can name an http(s) host."""
    tracking, registry = uri_context() if context is None else context
    return _text(tracking), _text(registry)


def default_rules(tracking_uri: str | None, registry_uri: str | None) -> tuple[HostRule, ...]:
    """With no allowlist set, credentials go only to the tracking and registry origins, port
    included: another port on the same host can be another user's service."""
    rules: list[HostRule] = []
    for uri in (tracking_uri, registry_uri):
        if not uri:
            continue
        origin = origin_of(uri)
        if origin.scheme in _DEFAULT_PORTS and origin.host and origin.port:
            rule = HostRule(origin.host, origin.port)
            if rule not in rules:
                rules.append(rule)
    return tuple(rules)


class HostPolicy:
    """Decides, for each outgoing URL, whether credentials may be attached."""

    def __init__(
        self,
        rules: tuple[HostRule, ...] | None,
        allow_http: bool,
        uris: Callable[[], tuple[object, object]] = uri_context,
    ) -> None:
        self._rules = rules
        self._allow_http = allow_http
        self._uris = uris
        self._lock = threading.Lock()
        self._decisions: dict[object, Origin | HostNotAllowedError] = {}

    def after_fork_in_child(self) -> None:
        """A new lock (one held by a parent thread would block a forked child forever)."""
        self._lock = threading.Lock()

    def effective_rules(self) -> tuple[HostRule, ...]:
        if self._rules is not None:
            return self._rules
        return default_rules(*mlflow_uris(self._uris()))

    def check(self, url: str) -> Origin:
        """The request's origin if credentials may go there; raise HostNotAllowedError if not."""
        end = url.find("/", 8)  # past "https://"; the origin part holds no "/"
        prefix = url if end < 0 else url[:end]
        context = None if self._rules is not None else self._uris()
        key: object = prefix if context is None else (prefix, context)
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._decide(url, context)
            with self._lock:
                if len(self._decisions) >= _DECISION_CACHE_SIZE:
                    self._decisions.clear()
                self._decisions[key] = decision
        if isinstance(decision, HostNotAllowedError):
            raise HostNotAllowedError(str(decision), decision.host)
        return decision

    def _decide(self, url: str, context: object) -> Origin | HostNotAllowedError:
        origin = origin_of(url)
        if origin.scheme not in _DEFAULT_PORTS or not origin.host:
            return HostNotAllowedError(
                f"Refusing to attach credentials to a non-HTTP(S) URL (scheme "
                f"{origin.scheme!r}): only http and https requests are authenticated",
                origin.host,
            )
        if self._rules is not None:
            rules = self._rules
            source = f"{ALLOWED_HOSTS_VARIABLE}={','.join(map(str, rules))}"
        else:
            assert isinstance(context, tuple)
            rules = default_rules(*mlflow_uris(context))
            shown = ",".join(map(str, rules)) or "none: the tracking URI is not http(s)"
            source = (
                f"{ALLOWED_HOSTS_VARIABLE} is unset, so only the MLflow tracking/registry "
                f"origin(s) are allowed ({shown})"
            )
        host_port = str(origin).split("://", 1)[1]
        if not any(rule.matches(origin.host, origin.port) for rule in rules):
            return HostNotAllowedError(
                f"Host not allowed: {host_port} is not in the credential allowlist ({source}). "
                f"Add it to {ALLOWED_HOSTS_VARIABLE} if credentials should go there",
                origin.host,
            )
        if origin.scheme == "http" and not self._allow_http:
            if not is_loopback(origin.host):
                return HostNotAllowedError(
                    f"Refusing to send credentials over plain http to {host_port}: use https, "
                    f"or set {ALLOW_HTTP_VARIABLE}=true if this network is trusted",
                    origin.host,
                )
            if http_proxy_for(url) is not None:
                return HostNotAllowedError(
                    f"Refusing to send credentials over plain http to {host_port}: a proxy "
                    "(HTTP_PROXY/ALL_PROXY) is on the way and would see them in clear. Add "
                    f"the host to NO_PROXY, use https, or set {ALLOW_HTTP_VARIABLE}=true if the "
                    "proxy is trusted",
                    origin.host,
                )
        return origin
