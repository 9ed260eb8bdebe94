from __future__ import annotations

import pytest

from sikker import config
from sikker.errors import InvalidInput


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8300",
        "https://sikker.example.com",
        "https://sikker.example.com/~ops/sikker/",
        "http://[::1]:8300",
        "http://[2001:db8::7]/x",
        "http://10.0.0.5:8300",
    ],
)
def test_usable_public_urls_are_kept(url: str) -> None:
    assert config.load({"public_url": url}).public_url == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://user@host", "user name"),
        ("http://user:pw@host", "user name"),
        ("http://host/?a=1", "query"),
        ("http://host/#x", "query or fragment"),
        ("ftp://host", "http"),
        ("host:8300", "http"),
        ("http://[::g]:80", "IPv6"),
        ("http://ho st", "host"),
        ("http://host/a b", "path"),
        ("http://host/'$(id)'", "path"),
        ("http://host:99999", "Port"),
    ],
)
def test_unusable_public_urls_are_refused_with_the_reason(url: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match="public URL") as refused:
        config.load({"public_url": url})
    assert problem.lower() in refused.value.message.lower()


def test_an_ipv6_listen_address_gives_a_bracketed_url() -> None:
    assert config.load({"listen": "[::1]:8300"}).url == "http://[::1]:8300"


def test_the_hsm_seal_needs_its_labels_excludes_a_key_file_and_takes_no_pin_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("SIKKER_HSM_MODULE", "SIKKER_HSM_TOKEN", "SIKKER_HSM_KEY", "SIKKER_HSM_PIN_FILE"):
        monkeypatch.delenv(name, raising=False)
    hsm = {"hsm_module": "/usr/lib/softhsm/libsofthsm2.so", "hsm_token": "t", "hsm_key": "k"}
    settings = config.load(hsm)
    assert (str(settings.hsm_module), settings.hsm_token, settings.hsm_key) == (hsm["hsm_module"], "t", "k")
    with pytest.raises(InvalidInput, match="--hsm-token and --hsm-key"):
        config.load({"hsm_module": "/x.so", "hsm_token": "t"})
    with pytest.raises(InvalidInput, match="not both"):
        config.load(hsm | {"seal_key_file": "/k"})
    with pytest.raises(InvalidInput, match="more than one worker"):
        config.load(hsm | {"workers": 2})
    assert "hsm_pin" not in config._ENV  # the PIN itself is never a setting (only its file)


def test_workers_default_to_one_per_cpu_only_for_a_server_that_unseals_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SIKKER_WORKERS", raising=False)
    monkeypatch.setattr(config.os, "sched_getaffinity", lambda _pid: set(range(8)))
    assert config.load({"seal_key_file": "/k"}).workers == config.AUTO_WORKERS == 4
    assert config.load({"dev": True, "workers": "auto"}).workers == 4
    monkeypatch.setattr(config.os, "sched_getaffinity", lambda _pid: {0, 1})
    assert config.load({"dev": True}).workers == 2
    # Shamir shares or an HSM: one process, the one 'operator unseal' (or the HSM) unseals.
    assert config.load({}).workers == 1
    hsm = {"hsm_module": "/usr/lib/softhsm/libsofthsm2.so", "hsm_token": "t", "hsm_key": "k"}
    assert config.load(hsm).workers == 1
    assert config.load({"dev": True, "workers": "3"}).workers == 3
    for bad in ("0", "65", "many"):
        with pytest.raises(InvalidInput, match="workers"):
            config.load({"dev": True, "workers": bad})
