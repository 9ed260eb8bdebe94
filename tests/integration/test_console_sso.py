"""Single sign-on into the web console, against the real test OpenID provider (tests/oidc):
the button appears for a provider whose redirect URI is the console's callback, the sign-in
lands in a console session, and a callback without the browser's pending sign-in gets none."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.oidc_provider import TestProvider, sign_in
from tests.support import Api, Server, init_and_unseal


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("console-sso")
    server = Server(f"sqlite:///{base / 'sikker.db'}", base / "data")
    callback = f"{server.url}/ui/sso/corp/callback"
    idp = TestProvider(base, redirect_uri=callback).start()
    config = base / "sikker.toml"
    config.write_text(
        f"""
[[oidc_providers]]
name = "corp"
issuer = "{idp.issuer}"
client_id = "sikker"
client_secret_env = "SIKKER_TEST_OIDC_SECRET"
scopes = ["openid", "email", "profile", "groups"]
redirect_uri = "{callback}"
"""
    )
    server.extra = ["--config", str(config)]
    server.env = {"SIKKER_TEST_OIDC_SECRET": idp.client_secret}
    try:
        server.start()
        init_and_unseal(server.url)
        yield server
    finally:
        server.stop()
        idp.stop()


def provider_url(page: str) -> str:
    found = re.search(r'href="([^"]+)" id="to-provider"', page)
    assert found
    return html.unescape(found.group(1))


def test_a_person_signs_in_to_the_console_through_the_provider(server: Server) -> None:
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as browser:
        page = browser.get("/ui/login")
        assert 'action="/ui/sso/corp/start"' in page.text
        nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
        assert nonce
        started = browser.post("/ui/sso/corp/start", data={"nonce": nonce.group(1)})
        assert started.status_code == 200
        cookie = started.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/ui/sso" in cookie
        query = sign_in(provider_url(started.text), "alice", stop_at=f"{server.url}/ui/sso/corp/callback")
        done = browser.get("/ui/sso/corp/callback", params=query)
        assert done.status_code == 200 and "Signed in as alice" in html.unescape(done.text)
        assert browser.cookies.get("sikker_ui", "").startswith("sks_")
        assert browser.get("/ui/vaults").status_code == 200


def test_a_callback_without_the_pending_sign_in_gives_no_session(server: Server) -> None:
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as browser:
        page = browser.get("/ui/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
        assert nonce
        started = browser.post("/ui/sso/corp/start", data={"nonce": nonce.group(1)})
        query = sign_in(provider_url(started.text), "bob", stop_at=f"{server.url}/ui/sso/corp/callback")
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as other:
        refused = other.get("/ui/sso/corp/callback", params=query)
        assert refused.status_code == 400 and "sikker_ui" not in other.cookies
    # A start without the sign-in form's nonce is refused too.
    assert httpx.post(f"{server.url}/ui/sso/corp/start", data={"nonce": "x"}).status_code == 403
    audit = Api(server.url).call("GET", "/api/audit/system")[0]
    assert audit == 401  # the audit log itself needs a token: nothing leaks to the anonymous
