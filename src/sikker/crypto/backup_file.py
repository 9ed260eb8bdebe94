"""The backup file: a plaintext header line, AES-256-GCM frames, a SHA-256 trailer.

Layout (version 1; docs/operator/backup.md)::

    header   one JSON line: format, version, cipher, kdf, salt, chunkBytes and the seal
             (kind, shares, threshold, wrappedRootKey: the root key as the store keeps it,
             encrypted by the unseal key), then "\\n"
    frames   flag (1 byte: 0 = more follow, 1 = final) | length (4 bytes, big-endian) |
             AES-256-GCM ciphertext + tag of at most chunkBytes of the inner stream
    trailer  b"SKBKSUM1" | SHA-256 of every byte before the trailer

The file key is HKDF-SHA256(root key, salt, info "sikker backup v1"): without the unseal
shares (or key file) that unwrap the root key, the file is noise. Frame ``i`` is sealed with
nonce ``i`` (11 bytes, big-endian) ``| flag`` and AAD ``"sikker backup v1" | SHA-256(header
line) | i (8 bytes) | flag``, so a changed header, frames swapped, dropped or repeated, and a
file cut after any frame (no final flag) all fail. The trailer's checksum lets anyone check
a copy without the keys; every failure of a frame is the one ``InvalidCiphertext``.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sikker.errors import InvalidCiphertext, InvalidInput

FORMAT = "sikker-backup"
VERSION = 1
INFO = b"sikker backup v1"
CHUNK_BYTES = 64 * 1024
MAX_CHUNK_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
TRAILER_MAGIC = b"SKBKSUM1"
TRAILER_BYTES = len(TRAILER_MAGIC) + 32
_FRAME = struct.Struct(">BI")
_TAG = 16


def new_salt() -> bytes:
    return os.urandom(32)


def derive_key(root_key: bytes, salt: bytes) -> bytes:
    """The file key: HKDF-SHA256 over the root key."""
    return HKDF(algorithm=SHA256(), length=32, salt=salt, info=INFO).derive(root_key)


def _nonce_aad(header_digest: bytes, index: int, final: bool) -> tuple[bytes, bytes]:
    flag = b"\x01" if final else b"\x00"
    return index.to_bytes(11, "big") + flag, INFO + header_digest + index.to_bytes(8, "big") + flag


class BackupWriter:
    """Writes the header line, then whatever ``write`` is given in sealed frames; ``close``
    seals the final frame and appends the checksum. Memory: one chunk."""

    def __init__(self, out: BinaryIO, key: bytes, salt: bytes, fields: dict[str, Any]) -> None:
        self._out = out
        self._aead = AESGCM(key)
        self._sha = hashlib.sha256()
        self._index = 0
        self._buffer = bytearray()
        self.size = 0
        header = fields | {
            "format": FORMAT,
            "version": VERSION,
            "cipher": "AES-256-GCM",
            "kdf": "HKDF-SHA256",
            "salt": salt.hex(),
            "chunkBytes": CHUNK_BYTES,
        }
        line = orjson.dumps(header, option=orjson.OPT_SORT_KEYS) + b"\n"
        self._digest = hashlib.sha256(line).digest()
        self._emit(line)

    def _emit(self, data: bytes) -> None:
        self._out.write(data)
        self._sha.update(data)
        self.size += len(data)

    def _frame(self, plain: bytes, final: bool) -> None:
        nonce, aad = _nonce_aad(self._digest, self._index, final)
        sealed = self._aead.encrypt(nonce, plain, aad)
        self._emit(_FRAME.pack(1 if final else 0, len(sealed)) + sealed)
        self._index += 1

    def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) > CHUNK_BYTES:  # keep one chunk back: it may be the final one
            self._frame(bytes(self._buffer[:CHUNK_BYTES]), False)
            del self._buffer[:CHUNK_BYTES]

    def close(self) -> str:
        """Seal the final frame, write the trailer; returns the SHA-256 (hex) of the file
        before the trailer, the checksum the trailer holds."""
        self._frame(bytes(self._buffer), True)
        self._buffer.clear()
        checksum = self._sha.digest()
        self._out.write(TRAILER_MAGIC + checksum)
        self.size += TRAILER_BYTES
        self._out.flush()
        return checksum.hex()


def read_header(f: BinaryIO) -> tuple[dict[str, Any], bytes]:
    """The header line of a backup file (parsed, and as its bytes); InvalidInput if it is not one."""
    line = f.readline(MAX_HEADER_BYTES + 1)
    if not line.endswith(b"\n") or len(line) > MAX_HEADER_BYTES:
        raise InvalidInput("not a Sikker backup file (no header line)")
    try:
        header = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise InvalidInput("not a Sikker backup file (the header is not JSON)") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InvalidInput("not a Sikker backup file")
    if header.get("version") != VERSION:
        raise InvalidInput(
            f"backup file format version {header.get('version')!r} is not supported (this Sikker "
            f"reads version {VERSION}): restore it with the Sikker version that made it"
        )
    chunk = header.get("chunkBytes")
    if header.get("cipher") != "AES-256-GCM" or header.get("kdf") != "HKDF-SHA256":
        raise InvalidInput("backup file: unknown cipher or key derivation")
    if not isinstance(chunk, int) or not 0 < chunk <= MAX_CHUNK_BYTES:
        raise InvalidInput("backup file: invalid chunk size")
    return header, line


def salt_of(header: dict[str, Any]) -> bytes:
    try:
        salt = bytes.fromhex(str(header["salt"]))
    except (KeyError, ValueError) as e:
        raise InvalidInput("backup file: invalid salt") from e
    if len(salt) != 32:
        raise InvalidInput("backup file: invalid salt")
    return salt


def verify_checksum(f: BinaryIO) -> str:
    """Check the trailer against a SHA-256 of the rest; returns it (hex). InvalidInput when
    the file is truncated or any byte changed."""
    size = os.fstat(f.fileno()).st_size
    if size < TRAILER_BYTES:
        raise InvalidInput(_DAMAGED)
    f.seek(0)
    sha = hashlib.sha256()
    remaining = size - TRAILER_BYTES
    while remaining:
        block = f.read(min(remaining, 1 << 20))
        if not block:
            raise InvalidInput(_DAMAGED)
        sha.update(block)
        remaining -= len(block)
    trailer = f.read(TRAILER_BYTES)
    if trailer[: len(TRAILER_MAGIC)] != TRAILER_MAGIC or trailer[len(TRAILER_MAGIC) :] != sha.digest():
        raise InvalidInput(_DAMAGED)
    f.seek(0)
    return sha.hexdigest()


_DAMAGED = (
    "the backup file is truncated or damaged: its SHA-256 checksum does not match (copy it again "
    "from where it was stored)"
)


def frames(f: BinaryIO, key: bytes, header: dict[str, Any], header_line: bytes) -> Iterator[bytes]:
    """Decrypt the frames after the header (``f`` positioned right after it) and yield the
    inner stream chunk by chunk. Raises InvalidCiphertext for a frame that does not open
    (wrong key, changed, reordered) and InvalidInput for a file that ends too early."""
    end = os.fstat(f.fileno()).st_size - TRAILER_BYTES
    aead = AESGCM(key)
    digest = hashlib.sha256(header_line).digest()
    limit = int(header["chunkBytes"]) + _TAG
    index = 0
    while True:
        head = f.read(_FRAME.size)
        if len(head) != _FRAME.size or f.tell() > end:
            raise InvalidInput(_DAMAGED)
        flag, length = _FRAME.unpack(head)
        if flag > 1 or length > limit or f.tell() + length > end:
            raise InvalidInput(_DAMAGED)
        sealed = f.read(length)
        nonce, aad = _nonce_aad(digest, index, flag == 1)
        try:
            plain = aead.decrypt(nonce, sealed, aad)
        except InvalidTag as e:
            raise InvalidCiphertext() from e
        yield plain
        index += 1
        if flag == 1:
            break
    if f.tell() != end:
        raise InvalidInput(_DAMAGED)
