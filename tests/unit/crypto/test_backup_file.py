"""The backup file's frames: whatever is changed, dropped, reordered or cut is refused."""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path

import pytest

from sikker.crypto import backup_file
from sikker.errors import InvalidCiphertext, InvalidInput

ROOT = bytes(range(32))
SEAL = {"seal": {"kind": "shamir", "shares": 3, "threshold": 2, "wrappedRootKey": "00"}}


def make(tmp_path: Path, payload: bytes, root: bytes = ROOT) -> Path:
    salt = backup_file.new_salt()
    out = io.BytesIO()
    writer = backup_file.BackupWriter(out, backup_file.derive_key(root, salt), salt, SEAL)
    for start in range(0, len(payload), 10_000):
        writer.write(payload[start : start + 10_000])
    checksum = writer.close()
    data = out.getvalue()
    assert writer.size == len(data) and data[-32:].hex() == checksum
    path = tmp_path / "b"
    path.write_bytes(data)
    return path


def read(path: Path, root: bytes = ROOT) -> bytes:
    with path.open("rb") as f:
        backup_file.verify_checksum(f)
        header, line = backup_file.read_header(f)
        key = backup_file.derive_key(root, backup_file.salt_of(header))
        return b"".join(backup_file.frames(f, key, header, line))


def frames_of(data: bytes) -> tuple[bytes, list[bytes]]:
    """(header line, frames) of a file's bytes, trailer dropped."""
    header_end = data.index(b"\n") + 1
    body, found = data[header_end:-40], []
    while body:
        _, length = struct.unpack(">BI", body[:5])
        found.append(body[: 5 + length])
        body = body[5 + length :]
    return data[:header_end], found


def resum(body: bytes) -> bytes:
    return body + backup_file.TRAILER_MAGIC + hashlib.sha256(body).digest()


PAYLOAD = bytes(range(256)) * 1200  # ~300 KiB: five frames


def test_round_trip_in_several_frames(tmp_path: Path) -> None:
    path = make(tmp_path, PAYLOAD)
    assert read(path) == PAYLOAD
    assert len(frames_of(path.read_bytes())[1]) == 5


def test_an_empty_stream_still_has_a_final_frame(tmp_path: Path) -> None:
    assert read(make(tmp_path, b"")) == b""


def test_the_wrong_root_key_opens_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidCiphertext):
        read(make(tmp_path, PAYLOAD), root=bytes(32))


@pytest.mark.parametrize("change", ["swap", "drop_middle", "drop_final", "repeat", "header"])
def test_a_changed_file_with_a_recomputed_checksum_is_refused(tmp_path: Path, change: str) -> None:
    header, frames = frames_of(make(tmp_path, PAYLOAD).read_bytes())
    if change == "swap":
        frames[1], frames[2] = frames[2], frames[1]
    elif change == "drop_middle":
        del frames[2]
    elif change == "drop_final":
        del frames[-1]
    elif change == "repeat":
        frames.insert(1, frames[1])
    else:
        header = header.replace(b'"threshold":2', b'"threshold":1')
    bad = tmp_path / "bad"
    bad.write_bytes(resum(header + b"".join(frames)))
    with pytest.raises((InvalidCiphertext, InvalidInput)):
        read(bad)


def test_a_cut_file_fails_its_checksum(tmp_path: Path) -> None:
    data = make(tmp_path, PAYLOAD).read_bytes()
    for cut in (1, 41, len(data) // 3):
        bad = tmp_path / "cut"
        bad.write_bytes(data[:-cut])
        with pytest.raises(InvalidInput, match="truncated or damaged"), bad.open("rb") as f:
            backup_file.verify_checksum(f)


def test_not_a_backup_and_another_version_are_named(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_bytes(b'{"format": "something-else"}\n')
    with other.open("rb") as f, pytest.raises(InvalidInput, match="not a Sikker backup"):
        backup_file.read_header(f)
    newer = tmp_path / "newer"
    newer.write_bytes(b'{"format": "sikker-backup", "version": 2}\n')
    with newer.open("rb") as f, pytest.raises(InvalidInput, match="version 2 is not supported"):
        backup_file.read_header(f)
