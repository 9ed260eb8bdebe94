"""Console sign-in and sign-out: password (+ TOTP) through ``PeopleService.login``, and single
sign-on through ``PeopleService.sso_start``/``sso_finish``, the calls behind /api/auth/login
and /api/auth/oidc/{provider}/start|finish, so lockout, per-address budget and audit are
theirs.

Single sign-on comes back to the console when the provider's ``redirect_uri`` setting is
``https://HOST/ui/sso/{provider}/callback``; only those providers get a button. The pending
sign-in (the root-key-sealed handle of ``sso_start``) waits in a short-lived HttpOnly cookie,
SameSite=Lax because the provider's redirect is a cross-site navigation; state, nonce and
PKCE are checked by ``sso_finish``."""

from __future__ import annotations

import hmac
import secrets as pysecrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from sikker.errors import InvalidInput, PermissionDenied, SikkerError
from sikker.ui.web import (
    COOKIE,
    Ctx,
    Form,
    actor,
    clear_cookie,
    error_page,
    redirect,
    render,
    services,
    session_cookie,
)

LOGIN_COOKIE = "sikker_ui_login"  # login CSRF: a random value in a cookie and in the form
SSO_COOKIE = "sikker_ui_sso"
SSO_TTL_S = 600  # the provider's page must be done within 10 minutes (as sso_finish checks)
MAX_QUERY = 4096


def _tls(request: Request) -> bool:
    return services(request).deps.settings.tls_cert is not None


def _next(raw: str) -> str:
    """Only a console path may follow sign-in (no open redirect)."""
    return raw if raw.startswith("/ui/") and not raw.startswith("//") and "\\" not in raw else "/ui/vaults"


def callback_path(provider: str) -> str:
    return f"/ui/sso/{provider}/callback"


def console_providers(request: Request) -> list[str]:
    """The providers whose redirect URI comes back to this console."""
    return [
        p.name
        for p in services(request).deps.settings.oidc_providers
        if p.redirect_uri.split("?")[0].endswith(callback_path(p.name))
    ]


def _form_page(request: Request, status: int = 200, error: str | None = None, next_: str = "") -> Response:
    nonce = pysecrets.token_urlsafe(24)
    response = render(
        "login.html",
        status,
        nonce=nonce,
        next=_next(next_),
        error=error,
        providers=console_providers(request),
    )
    response.set_cookie(
        LOGIN_COOKIE, nonce, path="/ui", secure=_tls(request), httponly=True, samesite="strict", max_age=3600
    )
    return response


def _check_nonce(request: Request, form: Form) -> None:
    sent, expected = form.get("nonce", max_len=64), request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise PermissionDenied("the sign-in form expired: reload the page and retry")


async def login_form(request: Request) -> Response:
    """GET /ui/login: user name, password, TOTP code; single sign-on buttons."""
    return _form_page(request, next_=request.query_params.get("next", "")[:200])


async def login(request: Request) -> Response:
    """POST /ui/login: the same sign-in as /api/auth/login (lockout, per-address budget, audit)."""
    svc = services(request)
    try:
        form = Form.parse(await request.body(), request.headers.get("content-type", ""))
        _check_nonce(request, form)
        name, password = form.get("user"), form.get("password", max_len=1024)
        totp = form.get("totp", max_len=64) or None
        if not name or not password:
            raise InvalidInput("give a user name and a password")
        signed = await run_in_threadpool(svc.people.login, name, password, totp, actor(request))
    except PermissionDenied as e:
        return error_page(request, e)
    except SikkerError as e:
        return _form_page(request, e.http_status, e.message)
    response = redirect(_next(form.get("next", max_len=200)))
    response.delete_cookie(LOGIN_COOKIE, path="/ui")
    return session_cookie(response, signed.token, _tls(request), svc.deps.settings.session_max_seconds)


async def sso_start(request: Request) -> Response:
    """POST /ui/sso/{provider}/start: to the provider's sign-in page."""
    provider = request.path_params["provider"]
    try:
        form = Form.parse(await request.body(), request.headers.get("content-type", ""))
        _check_nonce(request, form)
        if provider not in console_providers(request):
            raise InvalidInput(f"single sign-on with {provider!r} does not come back to the console")
        url, handle = await run_in_threadpool(
            services(request).people.sso_start, provider, None, actor(request)
        )
    except SikkerError as e:
        return error_page(request, e)
    # A page that moves on by itself, not a redirect: the CSP's form-action 'self' would stop a
    # form's redirect to another origin.
    response = render("to-provider.html", url=url, provider=provider)
    response.set_cookie(
        SSO_COOKIE,
        handle,
        path="/ui/sso",
        secure=_tls(request),
        httponly=True,
        samesite="lax",
        max_age=SSO_TTL_S,
    )
    return response


async def sso_callback(request: Request) -> Response:
    """GET /ui/sso/{provider}/callback?code=&state=: finish, then a session like a password
    sign-in. The session cookie is SameSite=Strict, which a browser does not send on a
    redirect that began at the provider; so the answer is a page that moves on by itself."""
    provider = request.path_params["provider"]
    svc = services(request)
    try:
        raw = request.url.query
        if len(raw) > MAX_QUERY:
            raise InvalidInput("the sign-in callback is too long")
        query = {k: v for k, v in request.query_params.items() if isinstance(v, str)}
        handle = request.cookies.get(SSO_COOKIE, "")
        if not handle or len(handle) > MAX_QUERY:
            raise InvalidInput("no single sign-on in progress in this browser: start again")
        signed = await run_in_threadpool(svc.people.sso_finish, provider, handle, query, actor(request))
    except SikkerError as e:
        return error_page(request, e)
    response = render("signed-in.html", user=signed.user.name)
    response.delete_cookie(SSO_COOKIE, path="/ui/sso")
    return session_cookie(response, signed.token, _tls(request), svc.deps.settings.session_max_seconds)


async def logout(ctx: Ctx) -> Response:
    """POST /ui/logout: ends the session in the store (not just the cookie)."""
    await ctx.call(ctx.svc.people.logout, ctx.principal, ctx.actor)
    return clear_cookie(redirect("/ui/login"), _tls(ctx.request))


async def home(request: Request) -> Response:
    return redirect("/ui/vaults" if request.cookies.get(COOKIE) else "/ui/login")
