"""The console's plumbing: templates, the signed-in person, CSRF, form bodies, headers, errors.

- **Session**: the ``sikker_ui`` cookie holds a people session token (``sks_``, made by
  ``PeopleService.login``) and is authenticated on every request by the same
  ``TokenService.authenticate`` as the admin API, so idle timeout, expiry, disabling and
  revocation apply unchanged. HttpOnly, SameSite=Strict, Path=/ui; Secure when the server
  itself serves TLS.
- **CSRF**: every POST carries ``csrf`` (form field) or ``X-CSRF-Token`` (header), the
  SHA-256 of the session token under a domain prefix: per session, derivable only by whoever
  holds the HttpOnly cookie, nothing stored. Compared in constant time; missing or wrong: 403.
- **Headers**: a strict Content-Security-Policy (no inline script or style), no framing, no
  referrer, and ``Cache-Control: no-store`` on every console response.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sikker.core.audit import Actor
from sikker.core.model import Principal
from sikker.core.values import has_control
from sikker.errors import InvalidInput, PermissionDenied, SikkerError, Unauthenticated
from sikker.service.bootstrap import Services

if TYPE_CHECKING:
    import jinja2

log = logging.getLogger("sikker.ui")
T = TypeVar("T")

COOKIE = "sikker_ui"
SESSION_PREFIX = "sks_"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
MAX_FORM_FIELDS = 2000  # the grants matrix: a page of secrets x the machines of a vault
OPAQUE = ("value", "fieldValue")  # secret content: any character, never echoed back
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@functools.cache
def templates() -> jinja2.Environment:
    """The console's templates, made on the first page served: a server whose console is never
    opened does not import Jinja."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sikker.ui", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["q"] = lambda s: quote(str(s), safe="")
    env.filters["fieldlist"] = lambda raw: ", ".join(orjson.loads(raw)) if raw else ""
    return env


def csrf_for(session_token: str) -> str:
    digest = hashlib.sha256(b"sikker/v1/ui-csrf|" + session_token.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def actor(request: Request, principal: Principal | None = None) -> Actor:
    ip = request.client.host if request.client else ""
    ua = request.headers.get("user-agent", "")[:512]
    if principal is None:
        return Actor("anonymous", "-", ip, ua)
    return Actor(principal.kind, principal.user_id or principal.token_id, ip, ua)


class Form:
    """A bounded ``application/x-www-form-urlencoded`` body: at most ``MAX_FORM_FIELDS`` fields
    (the body size is bounded before this by the app's BodyLimit). A field read with a control
    character in it is refused (400), except secret values."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    @classmethod
    def parse(cls, raw: bytes, content_type: str) -> Form:
        if not raw:
            return cls([])
        if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
            raise InvalidInput("send the form as application/x-www-form-urlencoded")
        try:
            pairs = parse_qsl(
                raw.decode("utf-8"),
                keep_blank_values=True,
                max_num_fields=MAX_FORM_FIELDS,
                strict_parsing=True,
            )
        except (UnicodeDecodeError, ValueError) as e:
            raise InvalidInput(f"the form is malformed or has more than {MAX_FORM_FIELDS} fields") from e
        return cls(pairs)

    @staticmethod
    def _checked(name: str, value: str) -> str:
        if name not in OPAQUE and has_control(value):
            raise InvalidInput(f"control characters are not allowed in {name}")
        return value

    def get(self, name: str, default: str = "", max_len: int = 255) -> str:
        for key, value in self.pairs:
            if key == name:
                if len(value) > max_len:
                    raise InvalidInput(f"{name} is longer than {max_len} characters")
                return self._checked(name, value)
        return default

    def all(self, name: str) -> list[str]:
        return [self._checked(name, v) for k, v in self.pairs if k == name]

    def int(self, name: str, minimum: int = 0, maximum: int = 2**31 - 1) -> int:
        raw = self.get(name, max_len=12).strip()
        if not raw.isascii() or not raw.isdigit() or not minimum <= int(raw) <= maximum:
            raise InvalidInput(f"{name} must be a whole number between {minimum} and {maximum}")
        return int(raw)


@dataclass(slots=True)
class Ctx:
    """One console request: who is signed in, the parsed form, and rendering."""

    request: Request
    svc: Services
    principal: Principal
    actor: Actor
    csrf: str
    form: Form = field(default_factory=lambda: Form([]))

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await run_in_threadpool(fn, *args, **kwargs)

    def param(self, name: str) -> str:
        value: str = self.request.path_params[name]
        return value

    def query(self, name: str, max_len: int = 128) -> str:
        value = self.request.query_params.get(name, "")
        if len(value) > max_len:
            raise InvalidInput(f"{name} is longer than {max_len} characters")
        return value

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        return render(template, status, me=self.principal, csrf=self.csrf, **context)


def render(template: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("me", None)
    context.setdefault("csrf", "")
    html = templates().get_template(template).render(**context)
    return secure(HTMLResponse(html, status_code=status))


def redirect(url: str) -> Response:
    return secure(RedirectResponse(url, status_code=303))


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def error_page(request: Request, error: SikkerError, principal: Principal | None = None) -> Response:
    if wants_json(request):
        return secure(Response(f'{{"error": {_json_str(error.message)}}}', error.http_status,
                               media_type="application/json"))  # fmt: skip
    return render("error.html", error.http_status, error=error, me=principal)


def _json_str(text: str) -> str:
    return orjson.dumps(text).decode()


Handler = Callable[[Ctx], Awaitable[Response]]


async def _session(request: Request) -> tuple[Principal, str]:
    token = request.cookies.get(COOKIE, "")
    if not token.startswith(SESSION_PREFIX):
        raise Unauthenticated("sign in first")
    svc = services(request)
    principal = await run_in_threadpool(svc.tokens.authenticate, token, actor(request))
    return principal, token


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a console handler: the signed-in person (else to the sign-in page), CSRF on every
    POST, the form parsed and bounded, errors shown as a page (never a traceback)."""

    async def endpoint(request: Request) -> Response:
        principal: Principal | None = None
        try:
            try:
                principal, token = await _session(request)
            except Unauthenticated:
                if request.method == "GET" and not wants_json(request):
                    return redirect("/ui/login?next=" + quote(request.url.path, safe=""))
                raise
            csrf = csrf_for(token)
            form = Form([])
            if request.method != "GET":
                raw = await request.body()
                content_type = request.headers.get("content-type", "")
                sent = request.headers.get(CSRF_HEADER, "")
                if not sent:
                    try:
                        form = Form.parse(raw, content_type)
                        sent = form.get(CSRF_FIELD, max_len=128)
                    except InvalidInput:
                        sent = ""  # a body that is no form carries no token either: 403
                if not hmac.compare_digest(sent.encode(), csrf.encode()):
                    raise PermissionDenied("missing or wrong CSRF token: reload the page and retry")
                if request.headers.get(CSRF_HEADER) and raw:
                    form = Form.parse(raw, content_type)
            ctx = Ctx(request, services(request), principal, actor(request, principal), csrf, form)
            return await handler(ctx)
        except SikkerError as e:
            if isinstance(e, Unauthenticated) and request.method == "GET" and not wants_json(request):
                return redirect("/ui/login")
            return error_page(request, e, principal)
        except Exception:
            log.exception("console error")
            return error_page(request, SikkerError("internal error"), principal)

    return endpoint


def session_cookie(response: Response, token: str, tls: bool, max_age: int) -> Response:
    response.set_cookie(
        COOKIE, token, max_age=max_age, path="/ui", secure=tls, httponly=True, samesite="strict"
    )
    return response


def clear_cookie(response: Response, tls: bool) -> Response:
    response.delete_cookie(COOKIE, path="/ui", secure=tls, httponly=True, samesite="strict")
    return response
