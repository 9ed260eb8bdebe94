"""Workload identity settings: ``jwks_allowed_networks``, ``jwks_timeout_seconds``,
``jwt_login_attempts_per_minute`` and ``[kubernetes_clusters.NAME]`` tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from sikker import config
from sikker.errors import InvalidInput

CLUSTERS = """
jwks_allowed_networks = ["10.20.0.0/16", "127.0.0.1"]
jwks_timeout_seconds = 3

[kubernetes_clusters.prod]
api_url = "https://10.0.0.1:6443"
ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
token_file = "/var/run/secrets/tokens/reviewer"

[kubernetes_clusters.self-review]
api_url = "https://kubernetes.default.svc"
"""


def _load(tmp_path: Path, text: str) -> config.Settings:
    path = tmp_path / "sikker.toml"
    path.write_text(text)
    return config.load({}, path)


def test_clusters_and_networks_load_from_the_file(tmp_path: Path) -> None:
    settings = _load(tmp_path, CLUSTERS)
    assert settings.jwks_allowed_networks == ("10.20.0.0/16", "127.0.0.1/32")
    assert settings.jwks_timeout_seconds == 3 and settings.jwt_login_attempts_per_minute == 60
    prod, own = settings.kubernetes_clusters
    assert (prod.name, prod.api_url, prod.token_file) == (
        "prod",
        "https://10.0.0.1:6443",
        Path("/var/run/secrets/tokens/reviewer"),
    )
    assert own.ca_file is None and own.token_file is None


def test_the_environment_sets_the_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIKKER_JWKS_ALLOWED_NETWORKS", "127.0.0.1/32, 10.0.0.0/8")
    monkeypatch.setenv("SIKKER_JWT_LOGIN_ATTEMPTS_PER_MINUTE", "5")
    settings = config.load({})
    assert settings.jwks_allowed_networks == ("127.0.0.1/32", "10.0.0.0/8")
    assert settings.jwt_login_attempts_per_minute == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('jwks_allowed_networks = ["not a network"]', "jwks_allowed_networks"),
        ('[kubernetes_clusters.prod]\napi_url = "http://10.0.0.1"\n', "api_url"),
        ("[kubernetes_clusters.prod]\n", "api_url"),
        ('[kubernetes_clusters.prod]\napi_url = "https://k"\ntoken = "x"\n', "unknown keys"),
        ('[kubernetes_clusters."Bad Name"]\napi_url = "https://k"\n', "name clusters"),
        ('kubernetes_clusters = ["x"]', "tables"),
    ],
)
def test_bad_workload_settings_are_refused_at_start(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        _load(tmp_path, text)
