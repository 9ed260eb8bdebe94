"""Copying a Redis ACL user's rules from ACL GETUSER (RESP3 dicts and RESP2 flat lists)."""

from __future__ import annotations

import pytest

from sikker.engines.base import Connection, ProviderError
from sikker.engines.redis import RedisProvider, acl_rules


def test_rules_from_a_resp3_answer_keep_order_and_split_into_arguments() -> None:
    info = {
        "flags": ["on", "sanitize-payload"],
        "passwords": ["887f..."],
        "commands": "+@all -debug",
        "keys": "~foo:* %R~bar",
        "channels": "&chan",
        "selectors": [{"commands": "-@all +get", "keys": "~sel", "channels": ""}],
    }
    assert acl_rules(info) == [
        "sanitize-payload",
        "+@all",
        "-debug",
        "~foo:*",
        "%R~bar",
        "resetchannels",
        "&chan",
        "(-@all +get ~sel)",
    ]


def test_rules_from_a_resp2_answer_with_flat_selectors() -> None:
    info = {
        "flags": ["off"],
        "commands": "-@all +ping",
        "keys": "",
        "channels": "",
        "selectors": [["commands", "+get", "keys", "~x", "channels", "&y"]],
    }
    assert acl_rules(info) == ["-@all", "+ping", "resetchannels", "(+get ~x &y)"]


def test_passwords_and_on_off_flags_are_never_copied() -> None:
    rules = acl_rules({"flags": ["on", "nopass"], "passwords": ["abc"], "commands": "+@read"})
    assert rules == ["+@read", "resetchannels"]


def test_the_admin_users_password_is_never_changed() -> None:
    provider = RedisProvider(Connection("127.0.0.1", 1, "", "", ""))
    with pytest.raises(ProviderError, match="admin user"):
        provider.apply("single", "default", "pw", "default")  # refused before connecting
