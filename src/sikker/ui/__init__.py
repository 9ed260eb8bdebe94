"""The web console at /ui: server-rendered pages (Jinja2, autoescaped) over the same services
as the admin API, a little script and a stylesheet served from the package. See
docs/console.md."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sikker.errors import NotFound
from sikker.ui import dynamic, secrets, signin, vaults
from sikker.ui.web import page, render, secure

_TYPES = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
_STATIC = {name: (resources.files("sikker.ui") / "static" / name).read_bytes() for name in _TYPES}


async def static(request: Request) -> Response:
    """GET /ui/static/{name}: the console's two assets (read once at import)."""
    name = request.path_params["name"]
    if name not in _STATIC:
        return secure(Response("not found", 404, media_type="text/plain"))
    response = secure(Response(_STATIC[name], media_type=_TYPES[name]))
    response.headers["cache-control"] = "public, max-age=3600"
    return response


async def not_found(request: Request) -> Response:
    """Any other path under /ui: a page (with the console's headers), not the API's JSON."""
    return render("error.html", 404, error=NotFound("no such page"))


GET, POST = ["GET"], ["POST"]
ROUTES = [
    Route("/ui", signin.home, methods=GET),
    Route("/ui/", signin.home, methods=GET),
    Route("/ui/static/{name}", static, methods=GET),
    Route("/ui/login", signin.login_form, methods=GET),
    Route("/ui/login", signin.login, methods=POST),
    Route("/ui/sso/{provider}/start", signin.sso_start, methods=POST),
    Route("/ui/sso/{provider}/callback", signin.sso_callback, methods=GET),
    Route("/ui/logout", page(signin.logout), methods=POST),
    Route("/ui/vaults", page(secrets.vaults), methods=GET),
    Route("/ui/vaults/{vault}", page(secrets.vault), methods=GET),
    Route("/ui/vaults/{vault}/projects", page(secrets.create_project), methods=POST),
    Route("/ui/projects/{project}", page(secrets.project), methods=GET),
    Route("/ui/projects/{project}/secrets", page(secrets.create_secret), methods=POST),
    Route("/ui/projects/{project}/trash", page(secrets.deleted_secret), methods=GET),
    Route("/ui/projects/{project}/grants", page(vaults.grants), methods=GET),
    Route("/ui/projects/{project}/grants", page(vaults.save_grants), methods=POST),
    Route("/ui/projects/{project}/unfreeze", page(vaults.unfreeze), methods=POST),
    Route("/ui/secrets/{secret}", page(secrets.secret), methods=GET),
    Route("/ui/secrets/{secret}", page(secrets.update_secret), methods=POST),
    Route("/ui/secrets/{secret}/reveal", page(secrets.reveal), methods=POST),
    Route("/ui/secrets/{secret}/rollback", page(secrets.rollback), methods=POST),
    Route("/ui/secrets/{secret}/delete", page(secrets.delete), methods=POST),
    Route("/ui/secrets/{secret}/restore", page(secrets.restore), methods=POST),
    Route("/ui/vaults/{vault}/machines", page(vaults.machines), methods=GET),
    Route("/ui/machines/{machine}/{change}", page(vaults.change_machine), methods=POST),
    Route("/ui/vaults/{vault}/enrollment-tokens", page(vaults.enrollment_page), methods=GET),
    Route("/ui/vaults/{vault}/enrollment-tokens", page(vaults.create_enrollment), methods=POST),
    Route("/ui/enrollment-tokens/{token}/revoke", page(vaults.revoke_enrollment), methods=POST),
    Route("/ui/vaults/{vault}/audit", page(vaults.audit), methods=GET),
    Route("/ui/vaults/{vault}/canaries", page(vaults.canaries), methods=GET),
    Route("/ui/vaults/{vault}/members", page(vaults.members), methods=GET),
    Route("/ui/vaults/{vault}/members", page(vaults.bind), methods=POST),
    Route("/ui/role-bindings/{binding}/delete", page(vaults.unbind), methods=POST),
    Route("/ui/vaults/{vault}/dashboard", page(vaults.dashboard), methods=GET),
    Route("/ui/vaults/{vault}/leases", page(dynamic.leases), methods=GET),
    Route("/ui/dynamic/{secret}", page(dynamic.definition), methods=GET),
    Route("/ui/leases/{lease}/revoke", page(dynamic.revoke), methods=POST),
    Route("/ui/leases/{lease}/renew", page(dynamic.renew), methods=POST),
    Route("/ui/{rest:path}", not_found, methods=["GET", "POST"]),  # last: everything else
]
