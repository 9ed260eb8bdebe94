"""Auto-unseal through PKCS#11: the root key wrapped by an AES key that never leaves an HSM.

Configured by the module (the vendor's PKCS#11 library), the token label, the key label and
the user PIN, read from a file or an environment variable (never a command-line argument,
which other users see in the process list). Tested against SoftHSM2.

The key is an AES key (CKK_AES, 256 bits recommended) on the token, made by the HSM's
own tools (e.g. ``pkcs11-tool --keygen --key-type AES:32``); Sikker only uses it: AES-GCM with a
random 96-bit nonce and the root-key AAD, inside the HSM. Stored blob: ``0x01 | nonce |
ciphertext+tag``. Every PKCS#11 failure becomes ``Unavailable`` with what to check.

Each use of the HSM runs on a thread of its own and is given ``timeout_s`` (default
``TIMEOUT_S``) to answer: a module or token that hangs costs the caller that long and then
``Unavailable``, and while that call has still not returned every further use is refused at
once (no thread piles up behind a hung HSM; a hung thread never keeps the process alive).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sikker.crypto import envelope
from sikker.errors import InvalidCiphertext, InvalidInput, Unavailable

_V1 = b"\x01"
TIMEOUT_S = 10.0  # seconds an HSM has to answer one use (open a session, find the key, one operation)


def pin_from(pin_file: Path | None, env: str = "SIKKER_HSM_PIN") -> Callable[[], str]:
    """The PIN, read when needed: from ``pin_file`` if given, else from the environment."""

    def read() -> str:
        if pin_file is not None:
            try:
                return pin_file.read_text().strip()
            except OSError as e:
                raise Unavailable(f"cannot read the HSM PIN file {pin_file}: {e.strerror}") from e
        pin = os.environ.get(env, "")
        if not pin:
            raise Unavailable(f"no HSM PIN: set {env} or give hsm_pin_file")
        return pin

    return read


class Pkcs11Seal:
    kind = "pkcs11"
    recovery_shares = True

    def __init__(
        self,
        module: Path,
        token_label: str,
        key_label: str,
        pin: Callable[[], str],
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.module = module
        self.token_label = token_label
        self.key_label = key_label
        self._pin = pin
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._hung: threading.Thread | None = None  # a call that has not answered in time

    @property
    def location(self) -> str:
        return f"PKCS#11 token {self.token_label!r}, key {self.key_label!r} ({self.module})"

    def _run(self, work: Callable[[Any, Any], bytes]) -> bytes:
        """``_use`` on a daemon thread, waited for at most ``timeout_s``."""
        where = f"the PKCS#11 module {self.module} (token {self.token_label!r})"
        outcome: list[Any] = []

        def call() -> None:
            try:
                outcome.append(self._use(work))
            except BaseException as e:  # handed to the caller below
                outcome.append(e)

        with self._lock:
            if self._hung is not None and self._hung.is_alive():
                raise Unavailable(f"HSM: an earlier call to {where} has still not returned")
            thread = threading.Thread(target=call, name="pkcs11", daemon=True)
            thread.start()
        thread.join(self.timeout_s)
        if thread.is_alive():
            with self._lock:
                self._hung = thread
            raise Unavailable(f"HSM: {where} did not answer within {self.timeout_s:g} s")
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return bytes(outcome[0])

    def _use(self, work: Callable[[Any, Any], bytes]) -> bytes:
        try:
            import pkcs11
        except ImportError as e:
            raise InvalidInput("the PKCS#11 seal needs python-pkcs11 (pip install python-pkcs11)") from e
        where = f"token {self.token_label!r}"
        try:
            lib = pkcs11.lib(str(self.module))
            token = lib.get_token(token_label=self.token_label)
            with token.open(user_pin=self._pin()) as session:
                key = session.get_key(
                    object_class=pkcs11.ObjectClass.SECRET_KEY,
                    key_type=pkcs11.KeyType.AES,
                    label=self.key_label,
                )
                return work(pkcs11, key)
        except pkcs11.NoSuchToken as e:
            raise Unavailable(f"HSM: no token labelled {self.token_label!r} in {self.module}") from e
        except pkcs11.NoSuchKey as e:
            raise Unavailable(f"HSM: no AES key labelled {self.key_label!r} on {where}") from e
        except pkcs11.MultipleObjectsReturned as e:
            raise Unavailable(f"HSM: several AES keys labelled {self.key_label!r} on {where}") from e
        except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange) as e:
            raise Unavailable(f"HSM: {where} refused the PIN (check hsm_pin_file / SIKKER_HSM_PIN)") from e
        except pkcs11.PinLocked as e:
            raise Unavailable(f"HSM: the PIN of {where} is locked") from e
        except pkcs11.EncryptedDataInvalid as e:
            raise InvalidCiphertext() from e
        except pkcs11.PKCS11Error as e:
            raise Unavailable(f"HSM: {type(e).__name__} on {where}") from e
        except (OSError, RuntimeError) as e:
            raise Unavailable(f"HSM: cannot load the PKCS#11 module {self.module}: {e}") from e

    def check(self) -> None:
        """Open a session and find the key (nothing is wrapped): ``Unavailable`` saying what is
        wrong when the HSM, the token, the PIN or the key cannot be used now."""
        self._run(lambda _pkcs11, _key: b"")

    def wrap(self, root_key: bytes) -> bytes:
        nonce = envelope.new_key()[:12]

        def encrypt(pkcs11: Any, key: Any) -> bytes:
            params = pkcs11.GCMParams(nonce, envelope.ROOT_KEY_AAD)
            return bytes(key.encrypt(root_key, mechanism=pkcs11.Mechanism.AES_GCM, mechanism_param=params))

        return _V1 + nonce + self._run(encrypt)

    def unwrap(self, blob: bytes) -> bytes:
        if blob[:1] != _V1 or len(blob) < 1 + 12 + 16:
            raise InvalidCiphertext()
        nonce, sealed = blob[1:13], blob[13:]

        def decrypt(pkcs11: Any, key: Any) -> bytes:
            params = pkcs11.GCMParams(nonce, envelope.ROOT_KEY_AAD)
            try:
                return bytes(key.decrypt(sealed, mechanism=pkcs11.Mechanism.AES_GCM, mechanism_param=params))
            except pkcs11.PKCS11Error as e:  # the tag did not match (SoftHSM says GeneralError)
                raise InvalidCiphertext() from e

        root = self._run(decrypt)
        if len(root) != envelope.KEY_BYTES:
            raise InvalidCiphertext()
        return root
