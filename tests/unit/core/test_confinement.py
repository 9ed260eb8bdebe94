from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from sikker.core.confinement import confine

DIR = PurePosixPath("/var/lib/sikker/audit-streams")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("audit.jsonl", "audit.jsonl"),
        ("team-a/audit.jsonl", "team-a/audit.jsonl"),
        ("./audit.jsonl", "audit.jsonl"),
        ("a//b.jsonl", "a/b.jsonl"),
        ("/var/lib/sikker/audit-streams/audit.jsonl", "audit.jsonl"),
        ("/var/lib/sikker/audit-streams/x/y.jsonl", "x/y.jsonl"),
    ],
)
def test_paths_inside_the_directory_become_relative(given: str, expected: str) -> None:
    assert confine(given, DIR) == PurePosixPath(expected)


@pytest.mark.parametrize(
    "given",
    [
        "",
        ".",
        "..",
        "../audit.jsonl",
        "a/../../audit.jsonl",
        "a/../b.jsonl",  # stays inside, but '..' is refused outright
        "/var/lib/sikker/seal.key",
        "/var/lib/sikker/audit-streams",
        "/var/lib/sikker/audit-streams/../seal.key",
        "/var/lib/sikker/audit-streams-evil/x",
        "/home/sikker/.bashrc",
        "audit\x00.jsonl",
    ],
)
def test_paths_outside_the_directory_are_refused(given: str) -> None:
    with pytest.raises(ValueError, match="stream directory"):
        confine(given, DIR)


def test_the_directory_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="absolute"):
        confine("a.jsonl", PurePosixPath("relative/dir"))
