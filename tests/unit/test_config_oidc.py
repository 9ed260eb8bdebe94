"""``[[oidc_providers]]`` in the server's TOML config file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sikker import config
from sikker.core.oidc import ASYMMETRIC_ALGORITHMS, GroupRole
from sikker.errors import InvalidInput

KEYCLOAK = """
[[oidc_providers]]
name = "corp"
issuer = "https://sso.example.com/realms/corp"
client_id = "sikker"
client_secret_file = "{secret_file}"
scopes = ["openid", "email", "profile"]
groups_claim = "groups"
redirect_uri = "https://sikker.example.com/api/auth/oidc/callback"

[[oidc_providers.group_roles]]
group = "platform"
role = "admin"
vault = "vault_prod000000000001"

[[oidc_providers.group_roles]]
group = "contractors"
role = "developer"
vault = "vault_prod000000000001"
project = "proj_web0000000000001"

[[oidc_providers]]
name = "google"
issuer = "https://accounts.google.com"
client_id = "123.apps.googleusercontent.com"
client_secret_env = "SIKKER_TEST_GOOGLE_SECRET"
"""


def test_providers_load_from_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "corp.secret"
    secret_file.write_text("from-a-file\n")
    monkeypatch.setenv("SIKKER_TEST_GOOGLE_SECRET", "from-the-env")
    path = tmp_path / "sikker.toml"
    path.write_text(KEYCLOAK.format(secret_file=secret_file))
    corp, google = config.load({}, path).oidc_providers
    assert (corp.name, corp.issuer, corp.client_id) == (
        "corp",
        "https://sso.example.com/realms/corp",
        "sikker",
    )
    assert corp.client_secret.reveal() == "from-a-file"
    assert corp.group_roles == (
        GroupRole("platform", "admin", "vault_prod000000000001"),
        GroupRole("contractors", "developer", "vault_prod000000000001", "proj_web0000000000001"),
    )
    assert corp.redirect_uri.endswith("/oidc/callback") and corp.algorithms == ASYMMETRIC_ALGORITHMS
    assert google.client_secret.reveal() == "from-the-env"
    assert (google.scopes, google.groups_claim, google.group_roles) == (
        ("openid", "email", "profile"),
        "groups",
        (),
    )
    assert "from-a-file" not in repr(corp) and "from-the-env" not in repr(config.load({}, path))


def test_no_providers_by_default() -> None:
    assert config.load({}).oidc_providers == ()


V = "vault_prod000000000001"


def table(**changes: Any) -> dict[str, Any]:
    base = {"name": "corp", "issuer": "https://idp.example.com", "client_id": "c", "client_secret": "s"}
    return {k: v for k, v in (base | changes).items() if v is not None}


@pytest.mark.parametrize(
    ("tables", "problem"),
    [
        ([table(name="Corp Inc")], "unique name"),
        ([table(), table()], "unique name"),
        ([table(client_secret_env="X")], "give one of client_secret"),
        ([table(client_secret=None)], "give one of client_secret"),
        (
            [table(client_secret=None, client_secret_env="SIKKER_TEST_UNSET_VARIABLE")],
            "client secret is empty",
        ),
        (
            [table(client_secret=None, client_secret_file="/nonexistent/secret")],
            "cannot read client_secret_file",
        ),
        ([table(issuer="http://idp.example.com")], "issuer is not an https:// URL"),
        ([table(issuer=None)], "issuer is missing"),
        ([table(redirect_uri="http://sikker.example.com/cb")], "redirect_uri"),
        ([table(client_id=None)], "client_id is missing"),
        ([table(scopes=["email"])], "scopes is without openid"),
        ([table(algorithms=["HS256"])], "algorithms"),
        ([table(algorithms=[])], "algorithms"),
        ([table(group_roles=[{"group": "g", "role": "admin"}])], "group, role and vault"),
        ([table(clientsecret="typo")], "unknown keys clientsecret"),
        ([table(group_roles=[{"group": "g", "role": "admin", "vault": "prod"}])], "not an id"),
        (
            [table(group_roles=[{"group": "g", "role": "admin", "vault": V, "project": "web"}])],
            "not an id",
        ),
        ({"name": "corp"}, "array of tables"),
    ],
)
def test_bad_provider_tables_are_refused_with_the_reason(tables: Any, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem) as refused:
        config.load_oidc_providers(tables)
    assert "'s'" not in refused.value.message  # the inline secret is never echoed


def test_an_unknown_top_level_key_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "sikker.toml"
    path.write_text('[[oidc_provider]]\nname = "x"\n')
    with pytest.raises(InvalidInput, match="unknown keys in config file: oidc_provider"):
        config.load({}, path)


def test_the_examples_in_the_operator_docs_load() -> None:
    import re
    import tomllib

    doc = (Path(__file__).resolve().parents[2] / "docs" / "operator" / "identity.md").read_text()
    section = doc.split("## Single sign-on (OIDC)", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```toml\n(.*?)```", section, re.S)
    assert len(blocks) == 3
    for block in blocks:
        tables = tomllib.loads(block)["oidc_providers"]
        for t in tables:  # the secret files and variables exist only on the operator's host
            t.pop("client_secret_file", None)
            t.pop("client_secret_env", None)
            t["client_secret"] = "s"
        assert config.load_oidc_providers(tables)
