"""Settings, built once: command-line flags > environment > config file > defaults.

The config file is TOML with the same keys as the flags (``listen``, ``database``,
``data_dir``, ...); every key, its environment variable and its flag are documented in
docs/operator/configuration.md, and a test keeps that page complete. The HSM's PIN is read
from ``hsm_pin_file`` or the environment (``SIKKER_HSM_PIN``), never from a flag.
Lists (``stream_allowed_networks``, ``jwks_allowed_networks``, ``dynamic_allowed_networks``)
are TOML arrays, or comma-separated in the environment. Single sign-on providers are ``[[oidc_providers]]``
tables, in the file only (``load_oidc_providers``; docs/operator/identity.md); so are the
Kubernetes API servers that review workload tokens, ``[kubernetes_clusters.NAME]``
(``load_kubernetes_clusters``; docs/operator/workload-identity.md).
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sikker.core import ids
from sikker.core.oidc import ASYMMETRIC_ALGORITHMS, GroupRole, endpoint_problem
from sikker.errors import InvalidInput

DEFAULT_LISTEN = "127.0.0.1:8300"
DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "sikker"

_ENV = {
    "listen": "SIKKER_LISTEN",
    "database": "SIKKER_DATABASE",
    "data_dir": "SIKKER_DATA_DIR",
    "public_url": "SIKKER_PUBLIC_URL",
    "seal_key_file": "SIKKER_SEAL_KEY_FILE",
    "max_body_bytes": "SIKKER_MAX_BODY_BYTES",
    "max_value_bytes": "SIKKER_MAX_VALUE_BYTES",
    "trash_days": "SIKKER_TRASH_DAYS",
    "auth_lockout_failures": "SIKKER_AUTH_LOCKOUT_FAILURES",
    "auth_lockout_seconds": "SIKKER_AUTH_LOCKOUT_SECONDS",
    "audit_checkpoint_records": "SIKKER_AUDIT_CHECKPOINT_RECORDS",
    "audit_checkpoint_seconds": "SIKKER_AUDIT_CHECKPOINT_SECONDS",
    "tls_cert": "SIKKER_TLS_CERT",
    "tls_key": "SIKKER_TLS_KEY",
    "workers": "SIKKER_WORKERS",
    "audit_stream_dir": "SIKKER_AUDIT_STREAM_DIR",
    "stream_allowed_networks": "SIKKER_STREAM_ALLOWED_NETWORKS",
    "max_header_bytes": "SIKKER_MAX_HEADER_BYTES",
    "header_timeout_seconds": "SIKKER_HEADER_TIMEOUT_SECONDS",
    "keepalive_timeout_seconds": "SIKKER_KEEPALIVE_TIMEOUT_SECONDS",
    "max_connections": "SIKKER_MAX_CONNECTIONS",
    "max_connections_per_address": "SIKKER_MAX_CONNECTIONS_PER_ADDRESS",
    "read_plan_cache_bytes": "SIKKER_READ_PLAN_CACHE_BYTES",
    "session_idle_seconds": "SIKKER_SESSION_IDLE_SECONDS",
    "session_max_seconds": "SIKKER_SESSION_MAX_SECONDS",
    "login_lockout_failures": "SIKKER_LOGIN_LOCKOUT_FAILURES",
    "login_lockout_seconds": "SIKKER_LOGIN_LOCKOUT_SECONDS",
    "allow_maintenance_database": "SIKKER_ALLOW_MAINTENANCE_DATABASE",
    "jwks_allowed_networks": "SIKKER_JWKS_ALLOWED_NETWORKS",
    "jwks_timeout_seconds": "SIKKER_JWKS_TIMEOUT_SECONDS",
    "jwt_login_attempts_per_minute": "SIKKER_JWT_LOGIN_ATTEMPTS_PER_MINUTE",
    "hsm_module": "SIKKER_HSM_MODULE",
    "hsm_token": "SIKKER_HSM_TOKEN",
    "hsm_key": "SIKKER_HSM_KEY",
    "hsm_pin_file": "SIKKER_HSM_PIN_FILE",
    "lease_sweep_interval_seconds": "SIKKER_LEASE_SWEEP_INTERVAL_SECONDS",
    "dynamic_allowed_networks": "SIKKER_DYNAMIC_ALLOWED_NETWORKS",
    "log_format": "SIKKER_LOG_FORMAT",
    "log_level": "SIKKER_LOG_LEVEL",
    "metrics": "SIKKER_METRICS",
    "metrics_listen": "SIKKER_METRICS_LISTEN",
    "metrics_token_file": "SIKKER_METRICS_TOKEN_FILE",
}
# Integer settings and their defaults (each also a config key and an environment variable).
_INTS = {
    "max_body_bytes": 1024 * 1024,
    "max_value_bytes": 64 * 1024,
    "trash_days": 30,
    "auth_lockout_failures": 10,
    "auth_lockout_seconds": 300,
    "audit_checkpoint_records": 1000,
    "audit_checkpoint_seconds": 60,
    "max_header_bytes": 16 * 1024,
    "header_timeout_seconds": 10,
    "keepalive_timeout_seconds": 5,
    "max_connections": 900,
    "max_connections_per_address": 64,
    "read_plan_cache_bytes": 64 * 1024 * 1024,
    "session_idle_seconds": 30 * 60,
    "session_max_seconds": 12 * 3600,
    "login_lockout_failures": 5,
    "login_lockout_seconds": 15 * 60,
    "jwks_timeout_seconds": 5,
    "jwt_login_attempts_per_minute": 60,
    "lease_sweep_interval_seconds": 10,
}
MAX_WORKERS = 64
AUTO_WORKERS = 4  # more SQLite writers than this only queue for its one write lock
LOG_FORMATS = ("auto", "json", "text")  # auto: JSON unless stdout is a terminal
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class SecretText(str):
    """A string that prints as stars (tokens, passwords in settings)."""

    def __repr__(self) -> str:
        return "SecretText('****')"

    def reveal(self) -> str:
        return str.__str__(self)


@dataclass(frozen=True, slots=True)
class OidcProvider:
    """An OpenID provider people sign in with (service/oidc.py)."""

    name: str
    issuer: str
    client_id: str
    client_secret: SecretText = field(repr=False)
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    groups_claim: str = "groups"
    group_roles: tuple[GroupRole, ...] = ()
    redirect_uri: str = ""  # "": the caller's default
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS


@dataclass(frozen=True, slots=True)
class KubernetesCluster:
    """A Kubernetes API server that reviews service-account tokens (TokenReview). Set by the
    operator only: a vault admin names a cluster, never a URL or a file."""

    name: str
    api_url: str
    ca_file: Path | None = None  # None: the system's trusted CAs
    token_file: Path | None = None  # the reviewer's token, re-read on every review; None: the
    # presented token is its own bearer (it then needs permission to create TokenReviews)


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8300
    database: str = ""
    data_dir: Path = DEFAULT_DATA_DIR
    public_url: str = ""
    seal_key_file: Path | None = None
    dev: bool = False
    dev_root_token: SecretText | None = field(default=None, repr=False)
    max_body_bytes: int = 1024 * 1024
    max_value_bytes: int = 64 * 1024
    trash_days: int = 30
    auth_lockout_failures: int = 10
    auth_lockout_seconds: int = 300
    audit_checkpoint_records: int = 1000
    audit_checkpoint_seconds: int = 60
    tls_cert: Path | None = None
    tls_key: Path | None = None
    workers: int = 1
    # File audit streams write only inside this directory (default DATA_DIR/audit-streams).
    audit_stream_dir: Path | None = None
    # Networks that webhook, syslog and email streams may reach although they are loopback,
    # private or link-local (denied by default: a vault admin must not reach internal services).
    stream_allowed_networks: tuple[str, ...] = ()
    # HTTP edge: request head size, time to send it, idle keep-alive, connection caps.
    max_header_bytes: int = 16 * 1024
    header_timeout_seconds: int = 10
    keepalive_timeout_seconds: int = 5
    max_connections: int = 900
    max_connections_per_address: int = 64
    # Memory the read lane's plan cache may hold on one node (values are sealed in the plans).
    read_plan_cache_bytes: int = 64 * 1024 * 1024
    # People: a session ends after this long idle, and this long after sign-in at the latest;
    # this many failed logins within 15 minutes lock the user name for the given time.
    session_idle_seconds: int = 30 * 60
    session_max_seconds: int = 12 * 3600
    login_lockout_failures: int = 5
    login_lockout_seconds: int = 15 * 60
    oidc_providers: tuple[OidcProvider, ...] = ()
    # Workload identity: networks a JWT role's discovery/JWKS URL may reach although they are
    # loopback, private or link-local (denied by default, like stream_allowed_networks; plain
    # http:// only inside them), the time one fetch may take, and login attempts per address.
    jwks_allowed_networks: tuple[str, ...] = ()
    jwks_timeout_seconds: int = 5
    jwt_login_attempts_per_minute: int = 60
    kubernetes_clusters: tuple[KubernetesCluster, ...] = ()
    # Dynamic secrets: how often each node expires leases and retries revocations, and the
    # networks a definition's database may be in although they are loopback, private or
    # link-local (denied by default, like stream_allowed_networks: checked at every connect).
    lease_sweep_interval_seconds: int = 10
    dynamic_allowed_networks: tuple[str, ...] = ()
    # Store Sikker's tables in PostgreSQL's "postgres" (or a template) database: refused unless set.
    allow_maintenance_database: bool = False
    # Auto-unseal through PKCS#11 (docs/operator/seal-and-keys.md): module, token, key labels.
    hsm_module: Path | None = None
    hsm_token: str = ""
    hsm_key: str = ""
    hsm_pin_file: Path | None = None
    # Logs: one access-log line per request at "info" (docs/operator/observability.md).
    log_format: str = "auto"
    log_level: str = "info"
    # GET /metrics (Prometheus text): on by default, on the main listener unless metrics_listen
    # names another HOST:PORT; with metrics_token_file, scrapes need that bearer token.
    metrics: bool = True
    metrics_listen: str = ""
    metrics_token_file: Path | None = None

    @property
    def stream_dir(self) -> Path:
        return self.audit_stream_dir or self.data_dir / "audit-streams"

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{self.data_dir / 'sikker.db'}"

    @property
    def url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "localhost" if self.host in ("127.0.0.1", "0.0.0.0", "::", "localhost") else self.host  # noqa: S104
        host = f"[{host}]" if ":" in host else host  # an IPv6 listen address
        return f"{'https' if self.tls_cert else 'http'}://{host}:{self.port}"


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not (0 < int(port) < 65536):
        raise InvalidInput(f"--listen must be HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def load(flags: dict[str, Any], config_file: Path | None = None) -> Settings:
    """Merge flags (``None`` means unset), environment, the optional TOML file and defaults."""
    merged: dict[str, Any] = {}
    if config_file is not None:
        try:
            merged.update(tomllib.loads(config_file.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise InvalidInput(f"cannot read config file {config_file}: {e}") from e
        unknown = set(merged) - set(_ENV) - {"oidc_providers", "kubernetes_clusters"}
        if unknown:
            raise InvalidInput(f"unknown keys in config file: {', '.join(sorted(unknown))}")
    for key, env in _ENV.items():
        if os.environ.get(env):
            merged[key] = os.environ[env]
    merged.update({k: v for k, v in flags.items() if v is not None})

    host, port = parse_listen(str(merged.get("listen", DEFAULT_LISTEN)))
    if bool(merged.get("tls_cert")) != bool(merged.get("tls_key")):
        raise InvalidInput("give both --tls-cert and --tls-key, or neither")
    dev = bool(merged.get("dev", False))
    data_dir = Path(merged["data_dir"]).expanduser() if merged.get("data_dir") else DEFAULT_DATA_DIR
    seal_key = merged.get("seal_key_file")
    token = merged.get("dev_root_token")
    hsm = _hsm(merged, seal_key)
    workers = _workers(merged.get("workers", "auto"), bool(seal_key) or dev)
    # Not with the HSM seal: a PKCS#11 module initialised before the fork is not usable in the
    # forked workers (untested either way, so refused).
    if workers > 1 and not seal_key and not dev:
        raise InvalidInput(
            "more than one worker needs a server that unseals itself (--seal-key-file or --dev): "
            "each worker process holds its own copy of the root key"
        )
    try:
        return Settings(
            host=host,
            port=port,
            database=str(merged.get("database") or ""),
            data_dir=data_dir,
            public_url=check_public_url(str(merged.get("public_url") or "")),
            seal_key_file=Path(seal_key).expanduser() if seal_key else None,
            dev=dev,
            dev_root_token=SecretText(token) if token else None,
            tls_cert=Path(merged["tls_cert"]).expanduser() if merged.get("tls_cert") else None,
            tls_key=Path(merged["tls_key"]).expanduser() if merged.get("tls_key") else None,
            workers=workers,
            audit_stream_dir=Path(merged["audit_stream_dir"]).expanduser()
            if merged.get("audit_stream_dir")
            else None,
            stream_allowed_networks=_networks(merged.get("stream_allowed_networks")),
            jwks_allowed_networks=_networks(merged.get("jwks_allowed_networks"), "jwks_allowed_networks"),
            dynamic_allowed_networks=_networks(
                merged.get("dynamic_allowed_networks"), "dynamic_allowed_networks"
            ),
            oidc_providers=load_oidc_providers(merged.get("oidc_providers", [])),
            kubernetes_clusters=load_kubernetes_clusters(merged.get("kubernetes_clusters", {})),
            allow_maintenance_database=_flag(
                "allow_maintenance_database", merged.get("allow_maintenance_database")
            ),
            hsm_module=hsm["hsm_module"],
            hsm_token=str(hsm["hsm_token"]),
            hsm_key=str(hsm["hsm_key"]),
            hsm_pin_file=hsm["hsm_pin_file"],
            log_format=_choice("log_format", merged.get("log_format", "auto"), LOG_FORMATS),
            log_level=_choice("log_level", merged.get("log_level", "info"), LOG_LEVELS),
            metrics=_flag("metrics", merged.get("metrics", True)),
            metrics_listen=_metrics_listen(merged.get("metrics_listen")),
            metrics_token_file=Path(merged["metrics_token_file"]).expanduser()
            if merged.get("metrics_token_file")
            else None,
            **{key: int(merged.get(key, default)) for key, default in _INTS.items()},
        )
    except ValueError as e:
        raise InvalidInput(f"invalid setting: {e}") from e


def _workers(value: object, unseals_itself: bool) -> int:
    """``auto`` (the default): one process per CPU this process may run on, at most
    AUTO_WORKERS, when the server unseals itself (a key file or --dev: every worker unseals on
    its own); otherwise one, so that 'operator unseal' reaches the only process holding keys."""
    if value == "auto":
        return min(len(os.sched_getaffinity(0)), AUTO_WORKERS) if unseals_itself else 1
    try:
        workers = int(str(value))
    except ValueError:
        raise InvalidInput(f"workers must be 'auto' or a number from 1 to {MAX_WORKERS}") from None
    if not 1 <= workers <= MAX_WORKERS:
        raise InvalidInput(f"workers must be between 1 and {MAX_WORKERS}")
    return workers


def _hsm(merged: dict[str, Any], seal_key: object) -> dict[str, Any]:
    """The PKCS#11 seal settings, checked: a module needs a token and a key label."""
    module, token, key = merged.get("hsm_module"), merged.get("hsm_token"), merged.get("hsm_key")
    pin_file = merged.get("hsm_pin_file")
    if module and seal_key:
        raise InvalidInput("give --seal-key-file or --hsm-module (one seal), not both")
    if module and not (token and key):
        raise InvalidInput("the PKCS#11 seal needs --hsm-token and --hsm-key (the token and key labels)")
    return {
        "hsm_module": Path(str(module)).expanduser() if module else None,
        "hsm_token": str(token or ""),
        "hsm_key": str(key or ""),
        "hsm_pin_file": Path(str(pin_file)).expanduser() if pin_file else None,
    }


P0 = "proj_0000000000000000"  # stands in for "no project" when checking group_roles ids
_OIDC_KEYS = {"name", "issuer", "client_id", "client_secret", "client_secret_file", "client_secret_env"}
_OIDC_KEYS |= {"scopes", "groups_claim", "group_roles", "redirect_uri", "algorithms"}


def load_oidc_providers(data: object) -> tuple[OidcProvider, ...]:
    """``[[oidc_providers]]`` tables, checked. The client secret comes from exactly one of
    ``client_secret``, ``client_secret_file`` or ``client_secret_env`` (never a flag)."""
    if not isinstance(data, list) or not all(isinstance(t, dict) for t in data):
        raise InvalidInput("oidc_providers must be an array of tables ([[oidc_providers]])")
    providers: list[OidcProvider] = []
    for table in data:
        name = str(table.get("name", ""))
        where = f"oidc_providers {name!r}"
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name) or name in [p.name for p in providers]:
            raise InvalidInput(f"{where}: give each provider a unique name of a-z, 0-9, _ and -")
        if set(table) - _OIDC_KEYS:
            raise InvalidInput(f"{where}: unknown keys {', '.join(sorted(set(table) - _OIDC_KEYS))}")
        sources = [k for k in ("client_secret", "client_secret_file", "client_secret_env") if k in table]
        if len(sources) != 1:
            raise InvalidInput(f"{where}: give one of client_secret, client_secret_file, client_secret_env")
        secret = str(table[sources[0]])
        if sources[0] == "client_secret_env":
            secret = os.environ.get(secret, "")
        elif sources[0] == "client_secret_file":
            try:
                secret = Path(secret).expanduser().read_text().strip()
            except OSError as e:
                raise InvalidInput(f"{where}: cannot read client_secret_file: {e.strerror}") from e
        scopes = tuple(str(s) for s in table.get("scopes", ("openid", "email", "profile")))
        algorithms = tuple(str(a) for a in table.get("algorithms", ASYMMETRIC_ALGORITHMS))
        try:
            roles = tuple(
                GroupRole(
                    str(g["group"]),
                    str(g["role"]),
                    str(g["vault"]),
                    str(g["project"]) if g.get("project") else None,
                )
                for g in table.get("group_roles", [])
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise InvalidInput(f"{where}: each group_roles entry needs group, role and vault") from e
        problems = {
            "issuer": endpoint_problem(table.get("issuer")),
            "redirect_uri": endpoint_problem(table["redirect_uri"]) if table.get("redirect_uri") else None,
            "client_id": None if table.get("client_id") else "missing",
            "a group_roles vault or project": None
            if all(ids.is_valid("vault", g.vault) and ids.is_valid("project", g.project or P0) for g in roles)
            else "not an id (vault_... / proj_...)",
            "client secret": None if secret else "empty",
            "scopes": None if "openid" in scopes else "without openid",
            "algorithms": None
            if algorithms and set(algorithms) <= set(ASYMMETRIC_ALGORITHMS)
            else f"not among {', '.join(ASYMMETRIC_ALGORITHMS)}",
        }
        for what, problem in problems.items():
            if problem:
                raise InvalidInput(f"{where}: {what} is {problem}")
        providers.append(
            OidcProvider(
                name=name,
                issuer=str(table["issuer"]),
                client_id=str(table["client_id"]),
                client_secret=SecretText(secret),
                scopes=scopes,
                groups_claim=str(table.get("groups_claim", "groups")),
                group_roles=roles,
                redirect_uri=str(table.get("redirect_uri", "")),
                algorithms=algorithms,
            )
        )
    return tuple(providers)


_CLUSTER_KEYS = {"api_url", "ca_file", "token_file"}


def load_kubernetes_clusters(data: object) -> tuple[KubernetesCluster, ...]:
    """``[kubernetes_clusters.NAME]`` tables: ``api_url`` (https://, or http:// on loopback),
    optional ``ca_file`` and ``token_file``. Files are checked at each review, not here."""
    if not isinstance(data, dict) or not all(isinstance(t, dict) for t in data.values()):
        raise InvalidInput("kubernetes_clusters must be tables ([kubernetes_clusters.NAME])")
    clusters = []
    for name, table in data.items():
        where = f"kubernetes_clusters {name!r}"
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
            raise InvalidInput(f"{where}: name clusters with a-z, 0-9, _ and -")
        if set(table) - _CLUSTER_KEYS:
            raise InvalidInput(f"{where}: unknown keys {', '.join(sorted(set(table) - _CLUSTER_KEYS))}")
        problem = endpoint_problem(table.get("api_url"))
        if problem:
            raise InvalidInput(f"{where}: api_url is {problem}")
        files = {
            k: Path(str(table[k])).expanduser() if table.get(k) else None for k in ("ca_file", "token_file")
        }
        clusters.append(KubernetesCluster(name, str(table["api_url"]).rstrip("/"), **files))
    return tuple(clusters)


_URL_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_URL_PATH = re.compile(r"[A-Za-z0-9._~/-]*")


def check_public_url(url: str) -> str:
    """The public URL machines are given (identity files, the bootstrap script), or "".

    Only ``http(s)://HOST[:PORT][/PATH]``: a DNS name, IPv4 or bracketed IPv6 host, and a
    path of unreserved characters; no user, query or fragment."""
    if not url:
        return url
    problem = _public_url_problem(url)
    if problem:
        raise InvalidInput(
            f"the public URL {url[:200]!r} cannot be used: {problem}; expected http(s)://HOST[:PORT][/PATH]"
        )
    return url


def _public_url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        return str(e)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "it must start with http:// or https://"
    if "@" in parts.netloc:
        return "it must not hold a user name or password"
    if "?" in url or "#" in url:
        return "it must not hold a query or fragment"
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return "the bracketed host is not an IPv6 address"
    elif not _URL_HOST.fullmatch(host):
        return "the host must be a DNS name or an IP address"
    if not _URL_PATH.fullmatch(parts.path):
        return "the path may hold only letters, digits and . _ ~ / -"
    return None


def _flag(name: str, value: object) -> bool:
    """A yes/no setting: a flag or TOML boolean, or 1/0, true/false, yes/no in the environment."""
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise InvalidInput(f"{name} must be true or false, not {str(value)[:20]!r}")


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in allowed:
        raise InvalidInput(f"{name} must be one of {', '.join(allowed)}, not {str(value)[:20]!r}")
    return text


def _metrics_listen(value: object) -> str:
    """A separate HOST:PORT for /metrics, or "" (the main listener)."""
    if not value:
        return ""
    host, port = parse_listen(str(value))
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _networks(value: object, name: str = "stream_allowed_networks") -> tuple[str, ...]:
    """CIDRs from a TOML list or a comma-separated string; each checked."""
    import ipaddress

    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    out = []
    for item in items:
        try:
            out.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
        except ValueError as e:
            raise InvalidInput(f"{name}: {e}") from e
    return tuple(out)
