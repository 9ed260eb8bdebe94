"""The web console in a real browser: Debian's Chromium driven by Playwright against a real
``sikker server`` on loopback. One server and one browser for the module.

Screenshots of the main pages: ``SIKKER_CONSOLE_SCREENSHOTS=docs/console python -m pytest
tests/e2e/test_console.py`` writes them to that folder (docs/console.md shows them)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import IN_CI, Api, Machine, Server, init_and_unseal

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"
FIRST, SECOND = "first-value-7f3a9c", "second-value-b81d44"
SHOTS = os.environ.get("SIKKER_CONSOLE_SCREENSHOTS")


def _browser_or_fail() -> None:
    if Path(CHROMIUM).exists():
        return
    if IN_CI:
        pytest.fail(f"{CHROMIUM} is missing and CI=true: apt-get install chromium")
    pytest.skip("Chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    _browser_or_fail()
    directory = tmp_path_factory.mktemp("console")
    server = Server(f"sqlite:///{directory / 'sikker.db'}", directory / "data").start()
    try:
        _, root_token = init_and_unseal(server.url)
        root = Api(server.url, root_token)
        vault = root.ok("POST", "/api/vaults", {"name": "payments"})
        for name, role in (("alice", "owner"), ("victor", "viewer")):
            root.ok(
                "POST", "/api/users", {"name": name, "email": f"{name}@example.org", "password": PASSWORD}
            )
            root.ok("POST", "/api/role-bindings", {"role": role, "vaultId": vault["id"], "user": name})
        yield {"server": server, "root": root, "vault": vault["id"]}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(world: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def shot(page: Any, name: str) -> None:
    check_page(page)
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


UNLABELLED = """() => Array.from(document.querySelectorAll(
    'input:not([type=hidden]), select, textarea'))
  .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label')).map(e => e.name)"""


def check_page(page: Any) -> None:
    """Accessibility basics on every page visited: each field has a label; nothing overflows."""
    assert page.evaluate(UNLABELLED) == [], page.url
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), page.url


def sign_in(browser: Any, url: str, name: str, screenshot: bool = False) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    problems: list[str] = []  # CSP violations and script errors show up on the console
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{url}/ui/")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    if screenshot:
        shot(page, "sign-in")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/ui/vaults$"))
    return context, page, problems


def test_a_person_manages_secrets_machines_and_audit_in_the_browser(
    world: dict[str, Any], browser: Any
) -> None:
    server: Server = world["server"]
    url, vault = server.url, world["vault"]
    context, page, problems = sign_in(browser, url, "alice", screenshot=True)

    # Vault -> new project -> new secret.
    page.get_by_role("link", name="payments").click()
    page.get_by_label("New project name").fill("web")
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url(re.compile(r".*/ui/projects/proj_\w+$"))
    project = page.url.rsplit("/", 1)[1]
    page.get_by_label("Name", exact=True).fill("API_KEY")
    page.locator("#secret-value").fill(FIRST)
    page.get_by_role("button", name="Create secret").click()
    page.wait_for_url(re.compile(r".*/ui/secrets/sk_\w+$"))
    secret = page.url.rsplit("/", 1)[1]

    # No value in the page until revealed; the CSP header is on the page.
    response = page.goto(f"{url}/ui/secrets/{secret}")
    assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    assert FIRST not in page.content()
    shot(page, "secret-detail")
    page.get_by_role("button", name="Reveal").click()
    page.wait_for_selector("#revealed-value:has-text('" + FIRST + "')")
    assert page.locator("#revealed").is_visible()
    page.get_by_role("button", name="Hide").click()
    assert FIRST not in page.content()

    # A second version, then roll back to the first (a third version with the first's value).
    page.locator("#secret-value").fill(SECOND)
    page.get_by_role("button", name="Save new version").click()
    page.wait_for_url(re.compile(rf".*/ui/secrets/{secret}$"))
    assert page.locator("#current-version").inner_text() == "2"
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Roll back to v1").click()
    page.wait_for_selector("#current-version:has-text('3')")
    assert world["root"].ok("GET", f"/api/secrets/{secret}")["value"] == FIRST

    # More secrets, for the screenshots of the list and the matrix.
    for name in ("DATABASE_URL", "STRIPE_KEY", "WEBHOOK_SECRET"):
        world["root"].ok("POST", f"/api/projects/{project}/secrets", {"name": name, "value": "x"})
    page.goto(f"{url}/ui/projects/{project}")
    assert page.get_by_role("link", name="API_KEY").is_visible()
    shot(page, "secrets-list")

    # An enrollment token with manual approval: shown once; a machine enrolls and waits.
    page.goto(f"{url}/ui/vaults/{vault}/enrollment-tokens")
    page.get_by_label("web").check()
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").inner_text().strip()
    machine = Machine.enroll(server, vault, token, name="build-01")
    assert machine.request("GET", f"/v1/secret/{secret}").status_code == 403  # pending

    # Approve it, grant it the secret in the matrix, and it reads.
    page.goto(f"{url}/ui/vaults/{vault}/machines")
    page.locator(f"tr[data-machine='{machine.id}']").get_by_role("button", name="Approve").click()
    page.wait_for_selector(f"tr[data-machine='{machine.id}'] .badge.enabled")
    page.goto(f"{url}/ui/projects/{project}/grants")
    page.locator(f"#g-{machine.id}-{secret}").check()
    shot(page, "grants-matrix")
    page.get_by_role("button", name="Save grants").click()
    page.wait_for_selector(f"#g-{machine.id}-{secret}:checked")
    read = machine.request("GET", f"/v1/secret/{secret}")
    assert read.status_code == 200 and FIRST in read.text

    # The machine's read and the person's reveal are in the audit view; the chain verifies.
    page.goto(f"{url}/ui/vaults/{vault}/audit")
    page.get_by_label("Action").fill("machine:secret:read")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("table.audit tbody tr").first.inner_text().count(machine.id) >= 1
    page.get_by_label("Action").fill("admin:secret:read")
    page.get_by_role("button", name="Verify chain").click()
    page.wait_for_selector("#verdict")
    assert "Chain verified" in page.locator("#verdict").inner_text()
    rows = page.locator("table.audit tbody").inner_text()
    assert "admin:secret:read" in rows and secret in rows
    shot(page, "audit-verify")

    page.goto(f"{url}/ui/vaults/{vault}/dashboard")
    assert page.locator("svg.chart rect").count() == 24
    shot(page, "dashboard")
    page.goto(f"{url}/ui/vaults/{vault}/machines")
    shot(page, "machines")

    # Sign out ends the session.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/ui/login$"))
    page.goto(f"{url}/ui/vaults")
    assert "/ui/login" in page.url
    assert problems == []
    context.close()
    world["secret"] = secret
    world["project"] = project


def test_a_viewer_sees_names_but_cannot_reveal_even_by_forging(world: dict[str, Any], browser: Any) -> None:
    url, secret = world["server"].url, world["secret"]
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(f"{url}/ui/login")  # keyboard only: the user name field has the focus
    # Chromium applies autofocus when it next renders, which a loaded machine can delay past
    # the load event: wait for it, or the keys go to the page.
    page.wait_for_function("document.activeElement && document.activeElement.id === 'user'")
    page.keyboard.type("victor")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/ui/vaults$"))
    page.keyboard.press("Tab")  # the skip link first, visibly focused
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.goto(f"{url}/ui/projects/{world['project']}")
    check_page(page)  # readable on a phone: no sideways scrolling
    page.goto(f"{url}/ui/secrets/{secret}")
    check_page(page)
    assert "API_KEY" in page.content()
    assert page.get_by_role("button", name="Reveal").count() == 0
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    forged = context.request.post(
        f"{url}/ui/secrets/{secret}/reveal", headers={"X-CSRF-Token": csrf, "Accept": "application/json"}
    )
    assert forged.status == 403 and FIRST not in forged.text()
    context.close()


def test_a_post_without_the_csrf_token_is_refused(world: dict[str, Any], browser: Any) -> None:
    url, secret = world["server"].url, world["secret"]
    context, _page, _ = sign_in(browser, url, "alice")
    cookie = next(c for c in context.cookies() if c["name"] == "sikker_ui")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    jar = {"sikker_ui": cookie["value"]}
    for path, data in ((f"/ui/secrets/{secret}/reveal", {}), (f"/ui/secrets/{secret}/delete", {})):
        response = httpx.post(url + path, data=data, cookies=jar, headers={"Accept": "application/json"})
        assert response.status_code == 403 and FIRST not in response.text
    # The same cookie still works for a page: the refusals changed nothing.
    assert httpx.get(f"{url}/ui/secrets/{secret}", cookies=jar).status_code == 200
    context.close()


def test_single_sign_on_lands_in_a_console_session(browser: Any, tmp_path: Path) -> None:
    """The provider's button, its pages in the browser, and back: the SameSite=Strict session
    cookie set on the callback is sent on the next page (the callback moves on by itself)."""
    from tests.helpers.oidc_provider import TestProvider

    base = tmp_path / "sso"
    base.mkdir(mode=0o700)
    server = Server(f"sqlite:///{base / 'sikker.db'}", base / "data")
    callback = f"{server.url}/ui/sso/corp/callback"
    idp = TestProvider(base, redirect_uri=callback).start()
    (base / "sikker.toml").write_text(
        f'[[oidc_providers]]\nname = "corp"\nissuer = "{idp.issuer}"\nclient_id = "sikker"\n'
        f'client_secret_env = "SIKKER_TEST_OIDC_SECRET"\nscopes = ["openid", "email", "profile"]\n'
        f'redirect_uri = "{callback}"\n'
    )
    server.extra = ["--config", str(base / "sikker.toml")]
    server.env = {"SIKKER_TEST_OIDC_SECRET": idp.client_secret}
    context = browser.new_context()
    try:
        server.start()
        init_and_unseal(server.url)
        page = context.new_page()
        page.goto(f"{server.url}/ui/login")
        page.get_by_role("button", name="corp").click()
        page.wait_for_selector("input[name=login]")  # the provider's own sign-in page
        page.fill("input[name=login]", "alice")
        page.fill("input[name=password]", "any")
        page.click("button[type=submit]")
        for _ in range(3):  # the provider's consent page, when it asks
            page.wait_for_load_state()
            if "/ui/" in page.url:
                break
            page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/ui/vaults$"))
        assert page.locator("h1").inner_text() == "Vaults"
        assert page.locator(".who").inner_text() == "alice"
    finally:
        context.close()
        server.stop()
        idp.stop()
