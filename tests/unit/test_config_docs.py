"""docs/operator/configuration.md names every setting, and the example config file loads with
the server's own loader (so neither can drift from config.py)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from sikker import config
from sikker.cli.server import server

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operator"
PAGE = (DOCS / "configuration.md").read_text()
EXAMPLE = DOCS / "sikker.example.toml"
# Settings fields that are not config keys of their own.
FIELD_KEYS = {"host": "listen", "port": "listen"}


def rows() -> dict[str, str]:
    """Documented key -> its table row."""
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", PAGE, re.M)}


@pytest.mark.parametrize("key", sorted(config._ENV))
def test_every_config_key_is_documented_with_its_environment_variable(key: str) -> None:
    row = rows().get(key)
    assert row is not None, f"{key} is missing from configuration.md"
    assert f"`{config._ENV[key]}`" in row


def test_every_settings_field_is_documented() -> None:
    for f in dataclasses.fields(config.Settings):
        name = FIELD_KEYS.get(f.name, f.name)
        assert f"`{name}`" in PAGE, f"Settings.{f.name} is missing from configuration.md"


def test_every_server_flag_is_documented() -> None:
    for param in server.params:
        for flag in [*param.opts, *param.secondary_opts]:
            if flag.startswith("--"):
                assert flag in PAGE, f"{flag} is missing from configuration.md"


def test_the_example_loads_with_the_real_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in config._ENV.values():
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("SIKKER_OIDC_CORP_SECRET", "example")
    settings = config.load({}, EXAMPLE)
    text = EXAMPLE.read_text()
    for key in [*config._ENV, "oidc_providers"]:
        assert re.search(rf"^\[*{key}\b", text, re.M), f"{key} is missing from the example"
    assert settings.workers == 2 and settings.log_format == "json" and settings.oidc_providers
    assert settings.metrics_listen == "127.0.0.1:9300" and settings.port == 8300
