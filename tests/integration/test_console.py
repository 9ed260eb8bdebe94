"""The web console in process (Starlette's TestClient): sessions and cookie flags, CSRF, headers,
the secrets page's search and paging, body bounds, and that the console's decisions are the
admin API's (a viewer may list but not reveal; a developer may create, a viewer may not)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

with warnings.catch_warnings():  # Starlette 1.x would rather use httpx2; httpx works the same here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from sikker.api.app import create_app
from sikker.config import Settings
from sikker.core import audit, values
from sikker.core.model import Filters, Principal
from sikker.service.bootstrap import Services, bootstrap
from sikker.ui.web import COOKIE, CSP, csrf_for

ROOT = Principal("root", "tok_test", None)
ACTOR = audit.Actor("root", "tok_test", "127.0.0.1", "pytest")
PASSWORD = "correct horse battery staple"
VALUE = "s3cr3t-value-never-in-html"


@dataclass
class World:
    svc: Services
    app: object
    vault: str
    project: str
    secret: str
    paging: str


@pytest.fixture(scope="module")
def world(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = Settings(
        database=module_database_url,
        data_dir=tmp_path_factory.mktemp("d"),
        dynamic_allowed_networks=("127.0.0.0/8",),  # the dynamic secret's Redis is local
    )
    svc = bootstrap(settings)
    try:
        svc.deps.db.migrate()
        share = svc.seal.init(1, 1, ACTOR).shares[0]
        svc.seal.submit_share(share, ACTOR)
        vault = svc.vaults.create_vault(ROOT, ACTOR, "main")
        project = svc.vaults.create_project(ROOT, ACTOR, vault.id, "web")
        secret = svc.secrets.create(ROOT, ACTOR, project.id, "DB_PASSWORD", values.standard(VALUE))
        paging = svc.vaults.create_project(ROOT, ACTOR, vault.id, "paging")
        for i in range(120):
            svc.secrets.create(ROOT, ACTOR, paging.id, f"key_{i:03d}", values.standard("x"))
        for name, role in (("dev", "developer"), ("view", "viewer")):
            svc.people.create_user(ROOT, ACTOR, name, f"{name}@example.org", PASSWORD)
            svc.people.bind(ROOT, ACTOR, role, vault_id=vault.id, user=name)
        yield World(svc, create_app(svc), vault.id, project.id, secret.id, paging.id)
    finally:
        svc.close()


def client(world: World) -> TestClient:
    return TestClient(world.app, base_url="http://testserver")  # type: ignore[arg-type]


def signed_in(world: World, name: str) -> tuple[TestClient, str]:
    c = client(world)
    page = c.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce
    response = c.post(
        "/ui/login",
        data={"nonce": nonce.group(1), "user": name, "password": PASSWORD, "next": "/ui/vaults"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    token = c.cookies.get(COOKIE)
    assert token and token.startswith("sks_")
    return c, csrf_for(token)


def test_sign_in_sets_a_strict_http_only_session_cookie(world: World) -> None:
    c = client(world)
    page = c.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce
    response = c.post(
        "/ui/login",
        data={"nonce": nonce.group(1), "user": "dev", "password": PASSWORD},
        follow_redirects=False,
    )
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and COOKIE + "=" in v)
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=strict" in lowered and "path=/ui" in lowered
    assert "secure" not in lowered  # this server serves plain HTTP; with TLS the flag is set


def test_a_wrong_password_shows_the_form_again_and_is_audited(world: World) -> None:
    c = client(world)
    nonce = re.search(r'name="nonce" value="([^"]+)"', c.get("/ui/login").text)
    assert nonce
    response = c.post("/ui/login", data={"nonce": nonce.group(1), "user": "dev", "password": "nope"})
    assert response.status_code == 401 and "invalid user name or password" in response.text
    assert COOKIE not in c.cookies
    records = world.svc.audit.query(ROOT, "system", Filters(action="user:auth:fail"), None, 5)
    assert records and records[0].entry.reason == "wrong password"


def test_sign_in_without_the_form_nonce_is_refused(world: World) -> None:
    response = client(world).post("/ui/login", data={"user": "dev", "password": PASSWORD})
    assert response.status_code == 403


def test_every_console_page_carries_the_security_headers(world: World) -> None:
    c, _ = signed_in(world, "dev")
    for path in ("/ui/login", "/ui/vaults", f"/ui/projects/{world.project}", f"/ui/secrets/{world.secret}"):
        response = c.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
        assert "<script>" not in response.text and " style=" not in response.text


def test_pages_without_a_session_lead_to_sign_in(world: World) -> None:
    response = client(world).get(f"/ui/secrets/{world.secret}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/ui/login")


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(world: World) -> None:
    c, csrf = signed_in(world, "dev")
    path = f"/ui/projects/{world.project}/secrets"
    assert c.post(path, data={"name": "X1", "type": "standard", "value": "v"}).status_code == 403
    # Another first character: the last one of a 32-byte token carries only 4 bits, and was
    # "A" itself in 1 run out of 16.
    wrong = ("B" if csrf[0] == "A" else "A") + csrf[1:]
    bad = {"csrf": wrong, "name": "X1", "type": "standard", "value": "v"}
    assert c.post(path, data=bad).status_code == 403
    _other, other_csrf = signed_in(world, "dev")  # another session's token is not this one's
    assert other_csrf != csrf
    assert c.post(path, data=bad | {"csrf": other_csrf}).status_code == 403
    ok = c.post(path, data=bad | {"csrf": csrf}, follow_redirects=False)
    assert ok.status_code == 303


def test_no_value_in_the_page_until_revealed_and_the_reveal_is_audited(world: World) -> None:
    c, csrf = signed_in(world, "dev")
    page = c.get(f"/ui/secrets/{world.secret}")
    assert VALUE not in page.text and "Reveal" in page.text
    response = c.post(
        f"/ui/secrets/{world.secret}/reveal",
        headers={"x-csrf-token": csrf, "accept": "application/json"},
    )
    assert response.status_code == 200 and response.json()["value"] == VALUE
    assert response.headers["cache-control"] == "no-store"
    found = world.svc.audit.query(ROOT, world.vault, Filters(action="admin:secret:read"), None, 1)
    assert found[0].entry.target["secret"] == world.secret


def test_a_viewer_lists_names_but_may_not_reveal_or_create(world: World) -> None:
    c, csrf = signed_in(world, "view")
    listing = c.get(f"/ui/projects/{world.project}")
    assert "DB_PASSWORD" in listing.text and "New secret" not in listing.text
    detail = c.get(f"/ui/secrets/{world.secret}")
    assert 'id="reveal"' not in detail.text
    forged = c.post(
        f"/ui/secrets/{world.secret}/reveal", headers={"x-csrf-token": csrf, "accept": "application/json"}
    )
    assert forged.status_code == 403 and VALUE not in forged.text
    create = c.post(
        f"/ui/projects/{world.project}/secrets",
        data={"csrf": csrf, "name": "VIEWER_MADE", "type": "standard", "value": "v"},
    )
    assert create.status_code == 403


def test_the_secrets_page_is_searched_and_paged_in_the_store(world: World) -> None:
    c, _ = signed_in(world, "dev")
    first = c.get(f"/ui/projects/{world.paging}")
    names = re.findall(r">(key_\d{3})<", first.text)
    assert names == [f"key_{i:03d}" for i in range(50)]  # 50 per page, name order
    link = re.search(r'rel="next" href="([^"]+)"', first.text)
    assert link
    second = c.get(link.group(1).replace("&amp;", "&"))
    assert re.findall(r">(key_\d{3})<", second.text)[0] == "key_050"
    found = c.get(f"/ui/projects/{world.paging}", params={"q": "KEY_11"})
    assert re.findall(r">(key_\d{3})<", found.text) == [f"key_{i}" for i in range(110, 120)]
    assert "No secrets match" in c.get(f"/ui/projects/{world.paging}", params={"q": "100%"}).text


def test_page_secrets_escapes_like_wildcards(world: World) -> None:
    page = world.svc.secrets.page(ROOT, world.paging, "_0", None, 200)
    assert [s.name for s in page][:2] == ["key_000", "key_001"] and len(page) == 100  # not key_1x0
    assert world.svc.secrets.page(ROOT, world.paging, "%", None, 10) == []
    after = world.svc.secrets.page(ROOT, world.paging, "", "key_118", 10)
    assert [s.name for s in after] == ["key_119"]


def test_bad_input_is_a_clear_4xx_page_never_a_500(world: World) -> None:
    c, csrf = signed_in(world, "dev")
    path = f"/ui/projects/{world.project}/secrets"
    too_many = "&".join(f"f{i}=x" for i in range(2100)) + f"&csrf={csrf}"
    response = c.post(path, content=too_many, headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 403  # the form cannot be read, so it carries no token
    with_header = c.post(
        path,
        content=too_many,
        headers={"content-type": "application/x-www-form-urlencoded", "x-csrf-token": csrf},
    )
    assert with_header.status_code == 400 and "2000 fields" in with_header.text
    json_body = c.post(
        path, content=b"{}", headers={"content-type": "application/json", "x-csrf-token": csrf}
    )
    assert json_body.status_code == 400
    huge = c.post(path, data={"csrf": csrf, "name": "BIG", "type": "standard", "value": "x" * 70_000})
    assert huge.status_code == 400 and "65536" in huge.text and "xxxx" not in huge.text
    oversized = c.post(path, content=b"a" * (2 * 1024 * 1024), headers={"x-csrf-token": csrf})
    assert oversized.status_code == 413
    bad_version = c.post(f"/ui/secrets/{world.secret}/rollback", data={"csrf": csrf, "version": "abc"})
    assert bad_version.status_code == 400
    assert c.get(f"/ui/secrets/{'sk_' + '0' * 16}").status_code == 404
    control = c.post(path, data={"csrf": csrf, "name": "A\x07B", "type": "standard", "value": "v"})
    assert control.status_code == 400


def test_sign_out_ends_the_session_in_the_store(world: World) -> None:
    c, csrf = signed_in(world, "dev")
    token = c.cookies.get(COOKIE)
    c.post("/ui/logout", data={"csrf": csrf})
    c.cookies.set(COOKIE, str(token), path="/ui")
    assert c.get("/ui/vaults", follow_redirects=False).status_code == 303


def test_a_structured_secret_is_created_from_fields(world: World) -> None:
    c, csrf = signed_in(world, "dev")
    data = {
        "csrf": csrf,
        "name": "DB",
        "type": "structured",
        "fieldName": ["user", "password", ""],
        "fieldValue": ["app", "pw", ""],
    }
    response = c.post(f"/ui/projects/{world.project}/secrets", data=data, follow_redirects=False)
    assert response.status_code == 303
    secret_id = response.headers["location"].rsplit("/", 1)[1]
    revealed = world.svc.secrets.reveal(ROOT, ACTOR, secret_id)
    assert revealed.value.kind == "structured" and set(orjson.loads(str(revealed.value.field_names))) == {
        "user",
        "password",
    }


def test_static_assets_are_served_with_the_same_headers(world: World) -> None:
    c = client(world)
    js = c.get("/ui/static/console.js")
    assert js.status_code == 200 and js.headers["content-security-policy"] == CSP
    assert c.get("/ui/static/../web.py").status_code == 404
    missing = c.get("/ui/no/such/page")
    assert missing.status_code == 404 and missing.headers["content-security-policy"] == CSP


PUBLIC = {
    "/ui",
    "/ui/",
    "/ui/login",
    "/ui/static/{name}",
    "/ui/sso/{provider}/start",
    "/ui/sso/{provider}/callback",
    "/ui/{rest:path}",  # the HTML 404 page
}


def test_every_console_route_but_sign_in_needs_a_session(world: World) -> None:
    """The console's route table: outside sign-in and the static files, every route answers
    nothing without a session (GET: to the sign-in page; POST: 401), before any service call."""
    from starlette.routing import Route

    from sikker.ui import ROUTES

    c = client(world)
    checked = 0
    for route in ROUTES:
        assert isinstance(route, Route)
        if route.path in PUBLIC:
            continue
        path = re.sub(r"\{(\w+)\}", "x", route.path)
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            response = c.request(method, path, follow_redirects=False)
            expected = 303 if method == "GET" else 401
            assert response.status_code == expected, (method, route.path, response.status_code)
            checked += 1
    assert checked >= 25


def test_the_audit_page_filters_pages_and_verifies(world: World) -> None:
    c, csrf = signed_in(world, "dev")
    c.post(f"/ui/secrets/{world.secret}/reveal", headers={"x-csrf-token": csrf, "accept": "application/json"})
    assert c.get(f"/ui/vaults/{world.vault}/audit").status_code == 403  # a developer: no audit:read
    world.svc.people.create_user(ROOT, ACTOR, "audra", "audra@example.org", PASSWORD)
    world.svc.people.bind(ROOT, ACTOR, "auditor", vault_id=world.vault, user="audra")
    a, _ = signed_in(world, "audra")
    page = a.get(f"/ui/vaults/{world.vault}/audit", params={"action": "admin:secret:read", "verify": "1"})
    assert page.status_code == 200 and "Chain verified" in page.text
    actions = set(re.findall(r"<code>([a-z:]+)</code></td>", page.text))
    assert actions == {"admin:secret:read"}
    assert 'rel="next"' in a.get(f"/ui/vaults/{world.vault}/audit").text  # > 50 records: a next page
    assert a.get(f"/ui/vaults/{world.vault}/audit", params={"severity": "loud"}).status_code == 400
    assert a.get(f"/ui/vaults/{world.vault}/audit", params={"since": "yesterday"}).status_code == 400
    since = a.get(f"/ui/vaults/{world.vault}/audit", params={"since": "2999-01-01T00:00"})
    assert "No records match" in since.text


def test_enrollment_tokens_are_shown_once_and_revoked(world: World) -> None:
    c, csrf = signed_in(world, "dev")
    form = {"csrf": csrf, "name": "ci", "maxUses": "2", "ttlHours": "1", "approval": "manual"}
    made = c.post(f"/ui/vaults/{world.vault}/enrollment-tokens", data=form | {"project": world.project})
    token = re.search(r'<pre id="new-token">([^<]+)</pre>', made.text)
    assert made.status_code == 201 and token
    listing = c.get(f"/ui/vaults/{world.vault}/enrollment-tokens")
    assert token.group(1) not in listing.text and "live" in listing.text
    token_id = re.search(r"/ui/enrollment-tokens/(\w+)/revoke", listing.text)
    assert token_id
    c.post(f"/ui/enrollment-tokens/{token_id.group(1)}/revoke", data={"csrf": csrf, "vault": world.vault})
    assert ">revoked<" in c.get(f"/ui/vaults/{world.vault}/enrollment-tokens").text
    bad = c.post(f"/ui/vaults/{world.vault}/enrollment-tokens", data=form | {"maxUses": "0"})
    assert bad.status_code == 400


def test_members_are_the_owners_to_manage(world: World) -> None:
    dev, dev_csrf = signed_in(world, "dev")
    assert dev.get(f"/ui/vaults/{world.vault}/members").status_code == 403
    refused = dev.post(
        f"/ui/vaults/{world.vault}/members", data={"csrf": dev_csrf, "user": "view", "role": "owner"}
    )
    assert refused.status_code == 403
    world.svc.people.create_user(ROOT, ACTOR, "olga", "olga@example.org", PASSWORD)
    world.svc.people.bind(ROOT, ACTOR, "owner", vault_id=world.vault, user="olga")
    owner, csrf = signed_in(world, "olga")
    bound = owner.post(
        f"/ui/vaults/{world.vault}/members",
        data={"csrf": csrf, "user": "view", "role": "developer", "project": world.paging},
    )
    assert bound.status_code == 200 and f"project <code>{world.paging}</code>" in bound.text
    binding = next(
        b for b in world.svc.people.list_bindings(ROOT, world.vault) if b.binding.project_id == world.paging
    )
    owner.post(f"/ui/role-bindings/{binding.id}/delete", data={"csrf": csrf, "vault": world.vault})
    assert f"project <code>{world.paging}</code>" not in owner.get(f"/ui/vaults/{world.vault}/members").text


def test_a_tripped_canary_shows_and_its_project_is_unfrozen_with_a_reason(world: World) -> None:
    project = world.svc.vaults.create_project(ROOT, ACTOR, world.vault, "bait")
    canary = world.svc.canaries.create(ROOT, ACTOR, project.id, "AWS_ROOT_KEY", "aws-access-key", None)
    world.svc.secrets.reveal(ROOT, ACTOR, canary.id)  # trips: the project freezes
    world.svc.people.create_user(ROOT, ACTOR, "adam", "adam@example.org", PASSWORD)
    world.svc.people.bind(ROOT, ACTOR, "admin", vault_id=world.vault, user="adam")
    c, csrf = signed_in(world, "adam")
    page = c.get(f"/ui/vaults/{world.vault}/canaries")
    assert "AWS_ROOT_KEY" in page.text and "Frozen projects" in page.text and canary.id in page.text
    assert (
        c.post(f"/ui/projects/{project.id}/unfreeze", data={"csrf": csrf, "reason": " "}).status_code == 400
    )
    c.post(f"/ui/projects/{project.id}/unfreeze", data={"csrf": csrf, "reason": "drill"})
    assert world.svc.vaults.get_project(ROOT, project.id).frozen_ms is None
    assert "Frozen projects" not in c.get(f"/ui/vaults/{world.vault}/canaries").text


def test_the_dashboard_counts_reads_per_hour(world: World) -> None:
    world.svc.people.create_user(ROOT, ACTOR, "dana", "dana@example.org", PASSWORD)
    world.svc.people.bind(ROOT, ACTOR, "admin", vault_id=world.vault, user="dana")
    c, _ = signed_in(world, "dana")
    page = c.get(f"/ui/vaults/{world.vault}/dashboard")
    assert page.status_code == 200 and page.text.count("<rect ") == 24
    total = re.search(r"Secret reads per hour \((\d+) in all\)", page.text)
    assert total and int(total.group(1)) >= 1


def test_the_session_ends_after_the_idle_timeout(tmp_path: Path) -> None:
    now = [1_800_000_000_000]
    settings = Settings(
        database=f"sqlite:///{tmp_path / 'idle.db'}", data_dir=tmp_path, session_idle_seconds=600
    )
    svc = bootstrap(settings, clock=lambda: now[0])
    try:
        svc.deps.db.migrate()
        svc.seal.submit_share(svc.seal.init(1, 1, ACTOR).shares[0], ACTOR)
        svc.people.create_user(ROOT, ACTOR, "ida", "ida@example.org", PASSWORD)
        idle = World(svc, create_app(svc), "", "", "", "")
        c, _ = signed_in(idle, "ida")
        now[0] += 599_000
        assert c.get("/ui/vaults", follow_redirects=False).status_code == 200  # used: idle restarts
        now[0] += 599_000
        assert c.get("/ui/vaults", follow_redirects=False).status_code == 200
        now[0] += 601_000
        assert c.get("/ui/vaults", follow_redirects=False).headers["location"].startswith("/ui/login")
    finally:
        svc.close()


def test_the_cookie_is_secure_when_the_server_serves_tls(tmp_path: Path) -> None:
    settings = Settings(
        database=f"sqlite:///{tmp_path / 'tls.db'}",
        data_dir=tmp_path,
        tls_cert=tmp_path / "cert.pem",
        tls_key=tmp_path / "key.pem",
    )
    svc = bootstrap(settings)
    try:
        svc.deps.db.migrate()
        svc.seal.submit_share(svc.seal.init(1, 1, ACTOR).shares[0], ACTOR)
        svc.people.create_user(ROOT, ACTOR, "tess", "tess@example.org", PASSWORD)
        c = TestClient(create_app(svc), base_url="https://testserver")  # type: ignore[arg-type]
        nonce = re.search(r'name="nonce" value="([^"]+)"', c.get("/ui/login").text)
        assert nonce
        done = c.post(
            "/ui/login",
            data={"nonce": nonce.group(1), "user": "tess", "password": PASSWORD},
            follow_redirects=False,
        )
        cookie = next(v for k, v in done.headers.multi_items() if k == "set-cookie" and COOKIE + "=" in v)
        assert "secure" in cookie.lower()
    finally:
        svc.close()


def test_console_sign_in_failures_lock_the_name_like_the_api(world: World) -> None:
    world.svc.people.create_user(ROOT, ACTOR, "lou", "lou@example.org", PASSWORD)
    c = client(world)
    limit = world.svc.deps.settings.login_lockout_failures
    for _ in range(limit):
        nonce = re.search(r'name="nonce" value="([^"]+)"', c.get("/ui/login").text)
        assert nonce
        wrong = c.post("/ui/login", data={"nonce": nonce.group(1), "user": "lou", "password": "wrong"})
        assert wrong.status_code == 401
    nonce = re.search(r'name="nonce" value="([^"]+)"', c.get("/ui/login").text)
    assert nonce
    locked = c.post("/ui/login", data={"nonce": nonce.group(1), "user": "lou", "password": PASSWORD})
    assert locked.status_code == 429 and COOKIE not in c.cookies


def test_versions_show_which_fields_changed_never_values(world: World) -> None:
    fields = {"user": "app", "password": "pw-one"}
    made = world.svc.secrets.create(ROOT, ACTOR, world.project, "SHAPED", values.structured(fields))
    later = values.structured({"user": "app", "host": "db", "pw": "x"})
    world.svc.secrets.update(ROOT, ACTOR, made.id, later)
    c, _ = signed_in(world, "dev")
    page = c.get(f"/ui/secrets/{made.id}").text
    assert "+host" in page and "+pw" in page and "\u2212password" in page
    assert "pw-one" not in page and ">app<" not in page


# -- dynamic secrets and leases -----------------------------------------------------------------
@dataclass
class Leased:
    dynamic: str
    lease: str
    username: str
    password: str
    machine: str


def _machine_lease(world: World, dynamic_id: str) -> Leased:
    """Enroll a machine granted the dynamic secret and lease one Redis user, signed as the
    machine plane asks (the only answer that ever carries the password)."""
    import asyncio
    import base64
    import secrets as pysecrets
    import time

    import httpx
    from nacl.signing import SigningKey

    from sikker.core import signing

    svc = world.svc
    _, token = svc.machines.create_enrollment(
        ROOT, ACTOR, world.vault, name="lease-bot", project_ids=[world.project], secret_ids=[dynamic_id],
        max_uses=1, token_ttl_s=600, machine_ttl_s=None, approval="auto", hostname_pattern=None,
        name_pattern=None, source_cidr=None,
    )  # fmt: skip
    key = SigningKey.generate()
    public = base64.b64encode(bytes(key.verify_key)).decode()
    made = svc.plane.enroll(world.vault, token, public, "h", None, "standard", "10.0.0.1", "t")
    path = f"/v1/dynamic/{dynamic_id}/leases"
    ts, nonce = str(int(time.time())), pysecrets.token_hex(16)
    sig = key.sign(signing.canonical("POST", path, ts, nonce, b"")).signature
    headers = {"X-Machine-Id": made.id, "X-Timestamp": ts, "X-Nonce": nonce,
               "X-Signature": base64.b64encode(sig).decode()}  # fmt: skip

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=world.app, client=("10.0.0.1", 40000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://sikker") as http:
            return await http.post(path, headers=headers)

    response = asyncio.run(go())
    assert response.status_code == 200, response.text
    got = response.json()
    return Leased(dynamic_id, got["leaseId"], got["username"], got["password"], made.id)


@pytest.fixture(scope="module")
def leased(world: World) -> Iterator[Leased]:
    """A Redis-backed dynamic secret (the local Redis; CI fails without it) with one lease."""
    import redis

    from tests.support import IN_CI

    admin = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=3, decode_responses=True)
    try:
        admin.ping()
    except redis.RedisError as e:
        if IN_CI:
            pytest.fail(f"Redis is not reachable at 127.0.0.1:6379 and CI=true: {e}")
        pytest.skip("Redis is not running")
    svc = world.svc
    login = values.structured({"username": "default", "password": ""})
    admin_secret = svc.secrets.create(ROOT, ACTOR, world.project, "REDIS_ADMIN", login)
    body = {
        "name": "CACHE_USER", "engine": "redis", "host": "127.0.0.1", "port": 6379,
        "adminSecret": admin_secret.id, "grantRole": "~dyn:* +@all -@admin -@dangerous",
        "defaultTtl": 600, "maxTtl": 1200,
    }  # fmt: skip
    d = svc.dynamic.create(ROOT, ACTOR, world.project, body)
    got = _machine_lease(world, d.id)
    yield got
    svc.dynamic.delete(ROOT, ACTOR, d.id, True)
    admin.close()


def test_a_dynamic_secret_shows_its_definition_and_leases_never_a_password(
    world: World, leased: Leased
) -> None:
    c, _ = signed_in(world, "dev")
    listing = c.get(f"/ui/projects/{world.project}").text
    assert f'href="/ui/dynamic/{leased.dynamic}"' in listing and "<td>dynamic</td>" in listing
    assert c.get(f"/ui/secrets/{leased.dynamic}", follow_redirects=False).headers["location"] == (
        f"/ui/dynamic/{leased.dynamic}"
    )
    for path in (f"/ui/dynamic/{leased.dynamic}", f"/ui/vaults/{world.vault}/leases"):
        page = c.get(path)
        assert page.status_code == 200, page.text
        assert leased.username in page.text and leased.machine in page.text
        assert leased.password not in page.text and "/reveal" not in page.text
        assert f"/ui/leases/{leased.lease}/revoke" in page.text
    detail = c.get(f"/ui/dynamic/{leased.dynamic}").text
    assert "redis" in detail and "~dyn:* +@all -@admin -@dangerous" in detail and "1200 s" in detail
    filtered = c.get(f"/ui/vaults/{world.vault}/leases", params={"state": "revoked"}).text
    assert leased.username not in filtered
    assert c.get(f"/ui/vaults/{world.vault}/leases", params={"state": "bogus"}).status_code == 400


def test_a_viewer_sees_leases_without_buttons_and_may_not_revoke(world: World, leased: Leased) -> None:
    c, csrf = signed_in(world, "view")
    page = c.get(f"/ui/vaults/{world.vault}/leases")
    assert page.status_code == 200 and leased.username in page.text
    assert "/ui/leases/" not in page.text and leased.password not in page.text
    assert "/ui/leases/" not in c.get(f"/ui/dynamic/{leased.dynamic}").text
    for change in ("revoke", "renew"):
        forged = c.post(f"/ui/leases/{leased.lease}/{change}", data={"csrf": csrf})
        assert forged.status_code == 403, change
    assert world.svc.leases.get(ROOT, leased.lease).state == "active"


def test_revoking_a_lease_from_the_console_drops_its_user(world: World, leased: Leased) -> None:
    import redis

    c, csrf = signed_in(world, "dev")
    path = f"/ui/leases/{leased.lease}"
    assert c.post(f"{path}/revoke", data={"reason": "x"}).status_code == 403  # no CSRF token
    renewed = c.post(f"{path}/renew", data={"csrf": csrf, "ttl": "900"}, follow_redirects=False)
    assert renewed.status_code == 303
    back = f"/ui/dynamic/{leased.dynamic}"
    response = c.post(
        f"{path}/revoke", data={"csrf": csrf, "reason": "leaving", "back": back}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == back
    lease = world.svc.leases.get(ROOT, leased.lease)
    assert lease.state == "revoked" and lease.revoke_reason == "leaving"
    admin = redis.Redis(host="127.0.0.1", port=6379, decode_responses=True)
    try:
        assert leased.username not in admin.acl_users()
    finally:
        admin.close()
    page = c.get(f"/ui/vaults/{world.vault}/leases", params={"state": "revoked"}).text
    assert leased.username in page and f"{path}/revoke" not in page
