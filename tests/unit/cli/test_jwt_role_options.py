"""The options of a JWT role: ``--bound-claim`` parsing and the API body the options make."""

from __future__ import annotations

from typing import Any

import pytest

from sikker.cli.jwt_role_options import parse_bound_claims, role_body
from sikker.errors import InvalidInput


def empty_options(**given: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "issuer": None,
        "discovery_url": None,
        "jwks_url": None,
        "public_key_files": (),
        "bound_audiences": (),
        "bound_subject": None,
        "bound_claims": (),
        "name_claim": None,
        "project_ids": (),
        "secret_ids": (),
        "machine_ttl": None,
        "source_cidrs": (),
        "kubernetes_mode": None,
        "kubernetes_cluster": None,
    }
    return options | given


def test_bound_claims_group_values_by_key() -> None:
    assert parse_bound_claims(("ref=refs/heads/main", "ref=refs/tags/v*", "run_attempt=1", "a.b=x=y")) == {
        "ref": ["refs/heads/main", "refs/tags/v*"],
        "run_attempt": ["1"],
        "a.b": ["x=y"],
    }


@pytest.mark.parametrize("bad", ["novalue", "=x", " =x"])
def test_bound_claim_without_key_or_equals_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="KEY=VALUE"):
        parse_bound_claims((bad,))


def test_role_body_names_the_api_fields() -> None:
    body = role_body(
        **empty_options(
            issuer="https://issuer",
            jwks_url="https://issuer/jwks",
            bound_audiences=("a", "b", "a"),
            machine_ttl="15m",
            kubernetes_mode="tokenreview",
            kubernetes_cluster="prod",
        )
    )
    assert body == {
        "issuer": "https://issuer",
        "jwksUrl": "https://issuer/jwks",
        "boundAudiences": ["a", "b"],
        "machineTtl": 900,
        "kubernetes": {"mode": "tokenreview", "cluster": "prod"},
    }


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"jwks_url": "u", "discovery_url": "d"}, "one key source"),
        ({"kubernetes_mode": "tokenreview"}, "needs --kubernetes-cluster"),
        ({"kubernetes_cluster": "prod"}, "needs --kubernetes-mode"),
        ({"machine_ttl": "1 hour"}, "durations"),
    ],
)
def test_role_body_refuses_contradictions(given: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        role_body(**empty_options(**given))
