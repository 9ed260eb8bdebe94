"""The options of a JWT role on the command line, shared by ``sikker jwt-role create`` and
``update``, and the API body they make (``POST /api/vaults/{vault}/jwt-roles``,
``PUT /api/jwt-roles/{role}``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from sikker.cli.admin import parse_duration
from sikker.cli.options import read_text_input, stacked
from sikker.cli.refs import PROJECT, SECRET
from sikker.errors import InvalidInput

CLEARABLE: dict[str, tuple[str, Any]] = {
    "bound-subject": ("boundSubject", None),
    "bound-claims": ("boundClaims", {}),
    "name-claim": ("nameClaim", None),
    "source-cidrs": ("sourceCidrs", []),
    "kubernetes": ("kubernetes", None),
    "projects": ("projects", []),
    "secrets": ("secrets", []),
}


def parse_bound_claims(items: tuple[str, ...]) -> dict[str, list[str]]:
    """``KEY=VALUE`` pairs; the same KEY again adds a value the claim may match instead."""
    claims: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput(f"--bound-claim takes KEY=VALUE, not {item!r}")
        values = claims.setdefault(key, [])
        if value not in values:
            values.append(value)
    return claims


def _key_source(
    discovery_url: str | None, jwks_url: str | None, public_key_files: tuple[str, ...]
) -> dict[str, Any]:
    given = [
        (flag, v)
        for flag, v in (
            ("--discovery-url", discovery_url),
            ("--jwks-url", jwks_url),
            ("--public-key-file", public_key_files),
        )
        if v
    ]
    if len(given) > 1:
        raise InvalidInput(f"give one key source, not {' and '.join(f for f, _ in given)}")
    if discovery_url:
        return {"discoveryUrl": discovery_url}
    if jwks_url:
        return {"jwksUrl": jwks_url}
    if public_key_files:
        return {"publicKeys": [read_text_input(f, "the public key") for f in public_key_files]}
    return {}


def role_body(
    *,
    issuer: str | None,
    discovery_url: str | None,
    jwks_url: str | None,
    public_key_files: tuple[str, ...],
    bound_audiences: tuple[str, ...],
    bound_subject: str | None,
    bound_claims: tuple[str, ...],
    name_claim: str | None,
    project_ids: tuple[str, ...],
    secret_ids: tuple[str, ...],
    machine_ttl: str | None,
    source_cidrs: tuple[str, ...],
    kubernetes_mode: str | None,
    kubernetes_cluster: str | None,
) -> dict[str, Any]:
    """The API body for the options given (create: all of them; update: the changes only)."""
    body: dict[str, Any] = _key_source(discovery_url, jwks_url, public_key_files)
    if issuer is not None:
        body["issuer"] = issuer
    if bound_audiences:
        body["boundAudiences"] = list(dict.fromkeys(bound_audiences))
    if bound_subject is not None:
        body["boundSubject"] = bound_subject
    if bound_claims:
        body["boundClaims"] = parse_bound_claims(bound_claims)
    if name_claim is not None:
        body["nameClaim"] = name_claim
    if project_ids:
        body["projects"] = list(dict.fromkeys(project_ids))
    if secret_ids:
        body["secrets"] = list(dict.fromkeys(secret_ids))
    if machine_ttl is not None:
        body["machineTtl"] = parse_duration(machine_ttl)
    if source_cidrs:
        body["sourceCidrs"] = list(dict.fromkeys(source_cidrs))
    if kubernetes_cluster and not kubernetes_mode:
        raise InvalidInput("--kubernetes-cluster needs --kubernetes-mode tokenreview")
    if kubernetes_mode:
        if kubernetes_mode == "tokenreview" and not kubernetes_cluster:
            raise InvalidInput("--kubernetes-mode tokenreview needs --kubernetes-cluster NAME")
        body["kubernetes"] = {"mode": kubernetes_mode}
        if kubernetes_cluster:
            body["kubernetes"]["cluster"] = kubernetes_cluster
    return body


def role_options(create: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options of a role, shared by ``create`` (issuer and audience required) and ``update``."""
    options = [
        click.option("--issuer", required=create, help="The token's 'iss', exactly."),
        click.option(
            "--discovery-url",
            default=None,
            help="Keys through OIDC discovery: the discovery document's URL "
            "(ISSUER/.well-known/openid-configuration).",
        ),
        click.option("--jwks-url", default=None, help="Keys from this JWKS URL."),
        click.option(
            "--public-key-file",
            "public_key_files",
            multiple=True,
            help="Keys pasted in: a PEM public key file (repeat for several).",
        ),
        click.option(
            "--bound-audience",
            "bound_audiences",
            multiple=True,
            required=create,
            help="An audience the token's 'aud' must hold (repeat: any of them).",
        ),
        click.option("--bound-subject", default=None, help="The token's 'sub': exact, or a glob (* ?)."),
        click.option(
            "--bound-claim",
            "bound_claims",
            multiple=True,
            metavar="KEY=VALUE",
            help="A claim the token must carry (repeat; the same KEY twice: any of the values). "
            "Globs match strings; dotted keys reach nested claims.",
        ),
        click.option("--name-claim", default=None, help="The claim that names the machine (default: sub)."),
        click.option(
            "--project",
            "project_ids",
            type=PROJECT,
            multiple=True,
            help="Project the machines join: id, VAULT/NAME or a name in --vault (repeat).",
        ),
        click.option(
            "--secret",
            "secret_ids",
            type=SECRET,
            multiple=True,
            help="Secret the machines may read: id, [VAULT/]PROJECT/NAME, or a name in the one --project "
            "(repeat).",
        ),
        click.option(
            "--machine-ttl",
            default=None,
            help="Lifetime of a machine it creates (default 1h; 1m to 24h), e.g. 15m.",
        ),
        click.option(
            "--source-cidr",
            "source_cidrs",
            multiple=True,
            help="Only log in (and read) from this network (repeat).",
        ),
        click.option(
            "--kubernetes-mode",
            type=click.Choice(["jwks", "tokenreview"]),
            default=None,
            help="Kubernetes service-account tokens: verify offline (jwks) or ask the API server.",
        ),
        click.option(
            "--kubernetes-cluster",
            default=None,
            help="With tokenreview: a server's [kubernetes_clusters.NAME].",
        ),
    ]

    return stacked(options)
