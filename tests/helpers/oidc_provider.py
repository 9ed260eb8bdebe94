"""A real OpenID provider (panva/oidc-provider, tests/oidc/server.mjs) on loopback, and a
tiny "browser" that signs in through its development interaction pages.

The provider's node_modules are installed once (npm install) when missing. Without node or
npm the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import html
import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx
import pytest

from tests.support import IN_CI, free_port

OIDC_DIR = Path(__file__).resolve().parents[1] / "oidc"
REDIRECT_URI = "http://127.0.0.1:8250/oidc/callback"  # never listened on: the browser stops there
_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', re.S)
_INPUT = re.compile(r"<input([^>]*)>")
_ATTR = re.compile(r'(\w+)="([^"]*)"')


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}, and CI=true: the OIDC tests need the test provider")
    pytest.skip(reason)


def ensure_node_modules() -> None:
    if (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        unavailable("node and npm are not installed")
        return
    done = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund"], cwd=OIDC_DIR, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        unavailable(f"npm install for tests/oidc failed: {done.stderr[-1000:]}")


class TestProvider:
    """tests/oidc/server.mjs as a subprocess on a free loopback port."""

    __test__ = False  # not a test class

    def __init__(self, log_dir: Path, redirect_uri: str = REDIRECT_URI) -> None:
        self.redirect_uri = redirect_uri
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.client_secret = secrets.token_urlsafe(24)
        self.log = log_dir / f"oidc-provider-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> TestProvider:
        ensure_node_modules()
        node = shutil.which("node")
        if node is None:
            unavailable("node is not installed")
            return self
        env = {"PORT": str(self.port), "REDIRECT_URI": self.redirect_uri, "CLIENT_SECRET": self.client_secret}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [node, "server.mjs"],
                cwd=OIDC_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={"PATH": os.environ.get("PATH", "")} | env,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                unavailable(f"the test OIDC provider exited: {self.log.read_text()[-2000:]}")
            if f"listening {self.port}" in self.log.read_text():
                return self
            time.sleep(0.05)
        self.stop()
        unavailable("the test OIDC provider did not start in 30 s")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def rotate(self) -> list[str]:
        """New signing keys (new kids); the old ones leave the JWKS."""
        response = httpx.post(f"{self.issuer}/test/rotate", timeout=10)
        response.raise_for_status()
        return list(response.json()["kids"])

    def set_groups(self, user: str, groups: list[str]) -> None:
        """Change a person's groups at the provider (seen at their next sign-in)."""
        httpx.post(f"{self.issuer}/test/groups/{user}", json=groups, timeout=10).raise_for_status()

    def private_keys(self) -> list[dict[str, Any]]:
        """The provider's current private signing JWKs (a test-only endpoint)."""
        return list(httpx.get(f"{self.issuer}/test/private-jwks", timeout=10).json()["keys"])


def sign_in(url: str, user: str, *, stop_at: str = REDIRECT_URI, max_steps: int = 20) -> dict[str, str]:
    """Follow ``url`` like a browser, filling the login form as ``user`` and confirming consent
    (and a device code), until a redirect to ``stop_at``; return that redirect's query."""
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        response = browser.get(url)
        for _ in range(max_steps):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(stop_at):
                    return dict(parse_qsl(urlsplit(location).query))
                response = browser.get(location)
                continue
            assert response.status_code == 200, (response.status_code, response.text[:500])
            form = _FORM.search(response.text)
            if form is None:  # the device flow's last page: nothing more to submit
                return {"page": response.text}
            fields = {}
            for tag in _INPUT.findall(form.group(2)):
                attrs = dict(_ATTR.findall(tag))
                if attrs.get("type") == "hidden":
                    fields[attrs["name"]] = html.unescape(attrs.get("value", ""))
            if 'name="login"' in form.group(2):
                fields |= {"login": user, "password": "any"}  # dev interactions accept any password
            response = browser.post(urljoin(str(response.url), html.unescape(form.group(1))), data=fields)
        raise AssertionError(f"no redirect to {stop_at} after {max_steps} steps")
