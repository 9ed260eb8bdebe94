"""One exception tree for Sikker.

Every error knows the HTTP status the API answers with and the exit code the
CLI ends with. The API maps errors to responses in one place
(``sikker.api.errors``); the CLI maps them to exit codes in one place
(``sikker.cli.main``). Messages are safe to show to a client: they never
contain a secret value or a token.

    SikkerError                      500  exit 1
    ├── InvalidInput                 400  exit 2
    │   └── ShareRejected            400  exit 2   (bad or mistyped unseal share)
    ├── PayloadTooLarge              413  exit 2
    ├── Unauthenticated              401  exit 3
    │   ├── Replayed                 401  exit 3   (a signed request's nonce was used)
    │   └── SsoRejected              401  exit 3   (a single sign-on response or ID token
    │                                               failed a check; .reason names it)
    ├── PermissionDenied             403  exit 3
    ├── NotFound                     404  exit 4
    ├── Conflict                     409  exit 5
    ├── Locked                       423  exit 5   (project frozen by a canary)
    ├── RateLimited                  429  exit 6
    ├── Unavailable                  503  exit 7
    │   ├── Sealed                   503  exit 7
    │   ├── IdentityProviderError    503  exit 7   (an OIDC provider cannot be reached,
    │   │                                           or its answer is unusable)
    │   └── StoreUnavailable         503  exit 7   (database down or busy)
    │       └── AuditUnavailable     503  exit 7   (audit log cannot be written:
    │                                               fail closed)
    ├── VerificationFailed           500  exit 8   (sikker audit verify: the log does not
    │                                               verify; CLI only)
    ├── InvalidCiphertext            500  exit 1   (one uninformative error for
    │                                               every decryption failure)
    ├── DeliveryError                500  exit 1   (an audit stream sink failed;
    │   │                                           service/streams/destination.py)
    │   └── DeliveryRefused          500  exit 1   (its destination is not allowed)
    └── ProviderError                500  exit 1   (sikker agent: a database refused;
        └── UnsupportedStrategy                     engines/base.py)
"""

from __future__ import annotations


class SikkerError(Exception):
    """Base of every error Sikker raises on purpose."""

    http_status = 500
    exit_code = 1
    default_message = "internal error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0])


class InvalidInput(SikkerError):
    http_status = 400
    exit_code = 2
    default_message = "invalid request"


class ShareRejected(InvalidInput):
    default_message = "unseal share rejected"


class PayloadTooLarge(SikkerError):
    http_status = 413
    exit_code = 2
    default_message = "request body too large"


class Unauthenticated(SikkerError):
    http_status = 401
    exit_code = 3
    default_message = "authentication required: pass a valid token (--token or SIKKER_TOKEN)"


class Replayed(Unauthenticated):
    default_message = "replayed request (nonce already used)"


class SsoRejected(Unauthenticated):
    """A sign-in through an OpenID provider was refused; ``reason`` is a short code
    (``iss``, ``aud``, ``exp``, ``nonce``, ``bad_signature``, ...) for tests and the audit log."""

    default_message = "single sign-on refused; sign in again"

    def __init__(self, message: str | None = None, reason: str = "rejected") -> None:
        super().__init__(message)
        self.reason = reason


class PermissionDenied(SikkerError):
    http_status = 403
    exit_code = 3
    default_message = "permission denied"


class NotFound(SikkerError):
    http_status = 404
    exit_code = 4
    default_message = "not found"


class Conflict(SikkerError):
    http_status = 409
    exit_code = 5
    default_message = "conflict"


class Locked(SikkerError):
    http_status = 423
    exit_code = 5
    default_message = "project is frozen"


class RateLimited(SikkerError):
    http_status = 429
    exit_code = 6
    default_message = "too many requests; slow down and retry"


class Unavailable(SikkerError):
    http_status = 503
    exit_code = 7
    default_message = "temporarily unavailable; retry shortly"


class Sealed(Unavailable):
    default_message = "server is sealed: unseal it with 'sikker operator unseal'"


class IdentityProviderError(Unavailable):
    default_message = "the identity provider cannot be reached or answered badly; retry shortly"


class StoreUnavailable(Unavailable):
    default_message = "storage is unavailable; retry shortly"


class AuditUnavailable(StoreUnavailable):
    default_message = "the audit log cannot be written; refusing to serve until it can"


class VerificationFailed(SikkerError):
    exit_code = 8
    default_message = "verification failed"


class InvalidCiphertext(SikkerError):
    default_message = "decryption failed"
