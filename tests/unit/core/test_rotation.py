from __future__ import annotations

import itertools
import string
import uuid

import pytest

from sikker.core import rotation
from sikker.errors import InvalidInput

HOUR_MS = 3_600_000


@pytest.mark.parametrize(
    ("charset", "allowed"),
    [
        ("alphanumeric", set(string.ascii_letters + string.digits)),
        ("numbers", set(string.digits)),
        ("hex", set("0123456789abcdef")),
        ("base64", set(string.ascii_letters + string.digits + "-_")),
        ("symbols", set(rotation.CHARSETS["symbols"])),
    ],
)
def test_generated_values_use_only_their_charset_and_length(charset: str, allowed: set[str]) -> None:
    for length in (1, 32, 1024):
        value = rotation.Generator(length, charset).generate()
        assert len(value) == length and set(value) <= allowed


def test_uuid_charset_gives_a_version_4_uuid() -> None:
    assert uuid.UUID(rotation.Generator(5, "uuid").generate()).version == 4


def test_generation_is_driven_by_the_random_source() -> None:
    counter = itertools.count()
    value = rotation.Generator(5, "numbers").generate(lambda n: next(counter) % n)
    assert value == "01234"


@pytest.mark.parametrize(("length", "charset"), [(0, "symbols"), (1025, "hex"), (8, "emoji")])
def test_bad_generators_are_refused(length: int, charset: str) -> None:
    with pytest.raises(InvalidInput):
        rotation.Generator(length, charset)


def test_interval_schedule_continues_from_now_so_missed_runs_happen_once() -> None:
    schedule = rotation.Schedule(interval_s=3600)
    now = 1_800_000_000_000
    assert schedule.next_after(now) == now + HOUR_MS
    assert schedule.next_after(now + 10 * HOUR_MS) == now + 11 * HOUR_MS


def test_cron_schedule_in_utc() -> None:
    schedule = rotation.Schedule(cron="0 3 * * *")
    # 2027-01-15 10:00 UTC -> next 2027-01-16 03:00 UTC
    assert schedule.next_after(1_800_007_200_000 - 0) % 86_400_000 == 3 * HOUR_MS


@pytest.mark.parametrize(
    ("interval", "cron"), [(None, None), (60, None), (400 * 86400, None), (3600, "* * * * *"), (None, "bad")]
)
def test_bad_schedules_are_refused(interval: int | None, cron: str | None) -> None:
    with pytest.raises(InvalidInput):
        rotation.Schedule(interval, cron)


@pytest.mark.parametrize(
    ("cron", "fires"),
    [
        ("0 0 31 2 *", False),
        ("0 0 30 2 *", False),
        ("0 0 31 4,6,9,11 *", False),
        ("0 0 29 2 *", True),  # leap days come
        ("0 0 31 2 1", True),  # day of month OR day of week: every Monday
        ("*/5 * * * *", True),
    ],
)
def test_a_cron_that_never_fires_is_refused(cron: str, fires: bool) -> None:
    if fires:
        assert rotation.Schedule(cron=cron).next_after(0) > 0
    else:
        with pytest.raises(InvalidInput, match="never fires"):
            rotation.Schedule(cron=cron)


def test_structured_rotation_keeps_the_other_fields() -> None:
    new = rotation.next_structured(
        {"host": "db", "password": "old"}, ["password"], rotation.Generator(8, "hex")
    )
    assert new["host"] == "db" and new["password"] != "old" and len(new["password"]) == 8
    with pytest.raises(InvalidInput, match="no field"):
        rotation.next_structured({"host": "db"}, ["password"], rotation.Generator())


def test_alternating_switches_between_the_two_users() -> None:
    gen = rotation.Generator(12, "alphanumeric")
    first = rotation.next_managed({"username": "app", "password": "p"}, "alternating", "app", "app_b", gen)
    assert first["username"] == "app_b" and first["password"] != "p"
    second = rotation.next_managed(first, "alternating", "app", "app_b", gen)
    assert second["username"] == "app"
    single = rotation.next_managed(
        {"username": "app", "password": "p", "host": "h"}, "single", "app", None, gen
    )
    assert single["username"] == "app" and single["host"] == "h"


@pytest.mark.parametrize(
    ("provider", "strategy", "refused"),
    [
        ("redis", "dual", False),
        ("mysql", "dual", False),  # MySQL 8.0.14+; the agent checks the server's version
        ("mariadb", "dual", True),
        ("postgresql", "dual", True),
        ("mongodb", "dual", True),
        ("mssql", "dual", True),
        ("mariadb", "alternating", False),
        ("mariadb", "single", False),
        ("postgresql", "alternating", False),
    ],
)
def test_dual_is_refused_on_engines_without_two_passwords(
    provider: str, strategy: str, refused: bool
) -> None:
    problem = rotation.strategy_problem(provider, strategy)
    assert (problem is not None) == refused
    if refused:
        assert problem is not None and "alternating" in problem


@pytest.mark.parametrize(
    ("cron", "allowed"),
    [
        ("* * * * *", False),  # every minute
        ("*/2 * * * *", False),
        ("*/4 * * * *", False),
        ("0,3 * * * *", False),  # 3 minutes apart within the hour
        ("58 * * * *", True),  # hourly
        ("0,58 * * * *", False),  # :58 then the next hour's :00
        ("0,58 3 * * *", True),  # 03:00 and 03:58: 58 minutes, then a day
        ("0,58 3,4 * * *", False),  # 03:58 then 04:00
        ("0,58 3,5 * * *", True),
        ("0,57 0,23 * * *", False),  # 23:57 then 00:00 the next day
        ("*/5 * * * *", True),
        ("0,5,10 * * * *", True),
        ("0 3 * * 1", True),
        ("0-4 3 * * *", False),
    ],
)
def test_a_cron_firing_less_than_five_minutes_apart_is_refused(cron: str, allowed: bool) -> None:
    if allowed:
        rotation.Schedule(cron=cron)
    else:
        with pytest.raises(InvalidInput, match="at least 5 minutes apart"):
            rotation.Schedule(cron=cron)
