"""Names where ids are taken: ``--vault acme``, ``--project acme/payments``, ``acme/payments/DB``.

An option or argument declared with ``type=VAULT``, ``PROJECT`` or ``SECRET`` takes an id or a
name. Ids (``vault_``, ``proj_``, ``sk_``) go to the server untouched; names are looked up here,
through the admin API's own list endpoints, by ``resolve`` (called by ``client_command`` before
the command runs). A name is looked up within the scope the command gives:

- a vault by its name (vault names are unique);
- a project as ``VAULT/PROJECT``, or by name within the command's ``--vault``, or by a name
  that only one of the vaults the token can see has;
- a secret as ``[VAULT/]PROJECT/NAME``, or by name within the command's one ``--project``;
- a dynamic secret likewise, through the project's dynamic-secret list.

Names holding a ``/`` are taken by id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from sikker.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from sikker.cli.client import Client

_PREFIXES = {"vault": "vault_", "project": "proj_", "secret": "sk_", "dynamic secret": "sk_"}


@dataclass(frozen=True, slots=True)
class Ref:
    """An id or a name of ``kind``, as given on the command line; not yet looked up."""

    kind: str
    text: str


class RefType(click.ParamType[Ref]):
    """A click type for an id-or-name; ``client_command`` turns it into an id."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = kind

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Ref:
        if isinstance(value, Ref):
            return value
        text = str(value)
        if not text:
            self.fail(f"a {self.kind} id or name cannot be empty", param, ctx)
        return Ref(self.kind, text)


VAULT = RefType("vault")
PROJECT = RefType("project")
SECRET = RefType("secret")
DYNAMIC = RefType("dynamic secret")


class Resolver:
    """Looks names up through the list endpoints, each list fetched at most once."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._vaults: list[dict[str, Any]] | None = None
        self._projects: dict[str, list[dict[str, Any]]] = {}

    def vault(self, text: str) -> str:
        if text.startswith(_PREFIXES["vault"]):
            return text
        return str(self._vault_named(text)["id"])

    def project(self, text: str, vault_id: str | None = None) -> str:
        if text.startswith(_PREFIXES["project"]):
            return text
        if "/" in text:
            vault_name, _, name = text.partition("/")
            return str(self._project_named(self._vault_named(vault_name), name)["id"])
        if vault_id is not None:
            vault = next(
                (v for v in self._all_vaults() if v["id"] == vault_id), {"id": vault_id, "name": vault_id}
            )
            return str(self._project_named(vault, text)["id"])
        found = [(v, p) for v in self._all_vaults() for p in self._projects_of(v["id"]) if p["name"] == text]
        if not found:
            raise NotFound(f"no project named {text!r} in any vault ('sikker project list --vault VAULT')")
        if len(found) > 1:
            paths = ", ".join(f"{v['name']}/{p['name']}" for v, p in found)
            raise InvalidInput(f"several vaults have a project named {text!r}: give one of {paths}")
        return str(found[0][1]["id"])

    def secret(
        self, text: str, project_id: str | None = None, vault_id: str | None = None, dynamic: bool = False
    ) -> str:
        if text.startswith(_PREFIXES["secret"]):
            return text
        if text.count("/") >= 2:
            vault_name, project_name, name = text.split("/", 2)
            project_id = self._project_named(self._vault_named(vault_name), project_name)["id"]
        elif "/" in text:
            project_text, _, name = text.partition("/")
            project_id = self.project(project_text, vault_id)
        elif project_id is not None:
            name = text
        else:
            raise InvalidInput(f"{text!r} is not a secret id: give the id (sk_...) or PROJECT/NAME")
        if dynamic:
            return self._dynamic_named(str(project_id), name)
        return self._secret_named(str(project_id), name)

    def _all_vaults(self) -> list[dict[str, Any]]:
        if self._vaults is None:
            self._vaults = list(self._client.get("/api/vaults")["vaults"])
        return self._vaults

    def _vault_named(self, name: str) -> dict[str, Any]:
        found = [v for v in self._all_vaults() if v["name"] == name]
        if not found:
            raise NotFound(f"no vault named {name!r} ('sikker vault list' shows them)")
        return found[0]  # vault names are unique

    def _projects_of(self, vault_id: str) -> list[dict[str, Any]]:
        if vault_id not in self._projects:
            self._projects[vault_id] = list(self._client.get(f"/api/vaults/{vault_id}/projects")["projects"])
        return self._projects[vault_id]

    def _project_named(self, vault: dict[str, Any], name: str) -> dict[str, Any]:
        found = [p for p in self._projects_of(vault["id"]) if p["name"] == name]
        if not found:
            raise NotFound(f"no project named {name!r} in vault {vault['name']}")
        return found[0]  # project names are unique within a vault

    def _secret_named(self, project_id: str, name: str) -> str:
        # The live secret of that name, else one in the trash (for 'secret restore').
        for deleted in (False, True):
            params = {"deleted": "true"} if deleted else None
            secrets = self._client.get(f"/api/projects/{project_id}/secrets", params)["secrets"]
            found = [s for s in secrets if s["name"] == name]
            if len(found) > 1:
                ids = ", ".join(s["id"] for s in found)
                raise InvalidInput(f"several secrets in the trash are named {name!r}: give one of {ids}")
            if found:
                return str(found[0]["id"])
        raise NotFound(f"no secret named {name!r} in project {project_id}")

    def _dynamic_named(self, project_id: str, name: str) -> str:
        found = self._client.get(f"/api/projects/{project_id}/dynamic-secrets")["dynamicSecrets"]
        for dynamic in found:
            if dynamic["name"] == name:
                return str(dynamic["id"])
        raise NotFound(f"no dynamic secret named {name!r} in project {project_id}")


def resolve(client: Client, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with every ``Ref`` (alone or in a tuple) replaced by an id: vaults first, then
    projects within the command's one vault, then secrets within its one project."""
    resolver = Resolver(client)
    resolved = dict(params)

    def each(kind: str, look_up: Any) -> list[str]:
        ids: list[str] = []
        for key, value in resolved.items():
            if isinstance(value, Ref) and value.kind == kind:
                resolved[key] = look_up(value.text)
                ids.append(resolved[key])
            elif (
                isinstance(value, tuple)
                and value
                and all(isinstance(v, Ref) and v.kind == kind for v in value)
            ):
                resolved[key] = tuple(look_up(v.text) for v in value)
                ids.extend(resolved[key])
        return ids

    vaults = each("vault", resolver.vault)
    scope_vault = vaults[0] if len(set(vaults)) == 1 else None
    projects = each("project", lambda text: resolver.project(text, scope_vault))
    scope_project = projects[0] if len(set(projects)) == 1 else None
    each("secret", lambda text: resolver.secret(text, scope_project, scope_vault))
    each("dynamic secret", lambda text: resolver.secret(text, scope_project, scope_vault, dynamic=True))
    return resolved
