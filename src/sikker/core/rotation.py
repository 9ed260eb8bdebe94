"""Rotation planning (pure): generated values, schedules, and the next value of a secret.

Randomness and time come in as arguments, so every rule here is tested with
tables of cases.
"""

from __future__ import annotations

import itertools
import secrets
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sikker.errors import InvalidInput

if TYPE_CHECKING:
    from croniter import croniter

CHARSETS = {
    "symbols": string.ascii_letters + string.digits + "!#%&()*+,-./:;<=>?@[]^_{|}~",
    "alphanumeric": string.ascii_letters + string.digits,
    "numbers": string.digits,
    "hex": "0123456789abcdef",
    "base64": string.ascii_letters + string.digits + "-_",  # URL-safe alphabet, no padding
    "uuid": "",  # a random UUID; length is ignored
}
MIN_INTERVAL_S = 300
MAX_INTERVAL_S = 366 * 86400
STRATEGIES = ("single", "dual", "alternating")
CRON_CHECK_FROM_MS = 946_684_800_000  # 2000-01-01T00:00Z
# Engines that keep two passwords for one user (Redis ACL; MySQL 8.0.14+ RETAIN CURRENT
# PASSWORD). The agent still checks a "mysql" server's version: it may be MariaDB.
DUAL_ENGINES = ("redis", "mysql")
_ENGINE_NAMES = {
    "mariadb": "MariaDB",
    "postgresql": "PostgreSQL",
    "mongodb": "MongoDB",
    "mssql": "SQL Server",
}

RandBelow = Callable[[int], int]


@dataclass(frozen=True, slots=True)
class Generator:
    length: int = 32
    charset: str = "symbols"

    def __post_init__(self) -> None:
        if self.charset not in CHARSETS:
            raise InvalidInput(f"charset must be one of {', '.join(CHARSETS)}")
        if not 1 <= self.length <= 1024:
            raise InvalidInput("length must be between 1 and 1024")

    def generate(self, randbelow: RandBelow = secrets.randbelow) -> str:
        if self.charset == "uuid":
            return str(uuid.UUID(int=sum(randbelow(256) << (8 * i) for i in range(16)), version=4))
        alphabet = CHARSETS[self.charset]
        return "".join(alphabet[randbelow(len(alphabet))] for _ in range(self.length))


@dataclass(frozen=True, slots=True)
class Schedule:
    """Every ``interval_s`` seconds, or at the times of a five-field cron expression (UTC)."""

    interval_s: int | None = None
    cron: str | None = None

    def __post_init__(self) -> None:
        if (self.interval_s is None) == (self.cron is None):
            raise InvalidInput("give exactly one of an interval or a cron expression")
        if self.interval_s is not None and not MIN_INTERVAL_S <= self.interval_s <= MAX_INTERVAL_S:
            raise InvalidInput("the interval must be between 5 minutes and 1 year")
        if self.cron is not None and (len(self.cron.split()) != 5 or not _croniter().is_valid(self.cron)):
            raise InvalidInput(f"not a five-field cron expression: {self.cron[:60]!r}")
        if self.cron is not None:
            # A valid expression may name a day that never comes (31 February): refuse it now,
            # not at every scheduler run. Whether it fires does not depend on the start.
            self.next_after(CRON_CHECK_FROM_MS)
            gap = cron_min_gap_minutes(self.cron)
            if gap * 60 < MIN_INTERVAL_S:
                raise InvalidInput(
                    f"the cron expression {self.cron[:60]!r} fires {gap} minute(s) apart: runs must be "
                    f"at least {MIN_INTERVAL_S // 60} minutes apart, as with an interval"
                )

    def next_after(self, now_ms: int) -> int:
        """The first due time strictly after ``now_ms``. Missed runs are not replayed:
        after downtime the schedule continues from now, so a rotation runs once."""
        if self.interval_s is not None:
            return now_ms + self.interval_s * 1000
        assert self.cron is not None
        start = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
        from croniter import CroniterBadDateError, croniter

        try:
            nxt: datetime = croniter(self.cron, start).get_next(datetime)
        except CroniterBadDateError as e:
            raise InvalidInput(f"the cron expression {self.cron[:60]!r} never fires") from e
        return int(nxt.timestamp() * 1000)


def cron_min_gap_minutes(cron: str) -> int:
    """The shortest time between two runs of a valid five-field cron expression, in minutes.

    A day's runs are every (hour, minute) pair of the first two fields, so the gaps within a
    day come from those alone. The gap from a day's last run to the next day's first is counted
    as if every day fired (conservative: '0,57 0,23 * * 1' is refused although its Monday
    23:57 run is followed by the next Monday's 00:00)."""
    minute_field, hour_field = _croniter()(cron).expanded[:2]
    minutes = range(60) if minute_field == ["*"] else sorted(int(m) for m in minute_field)
    hours = range(24) if hour_field == ["*"] else sorted(int(h) for h in hour_field)
    times = [h * 60 + m for h in hours for m in minutes]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    return min([*gaps, 24 * 60 - times[-1] + times[0]])


def strategy_problem(provider: str, strategy: str) -> str | None:
    """Why ``strategy`` cannot work on ``provider``, if it cannot (checked when configured)."""
    if strategy == "dual" and provider not in DUAL_ENGINES:
        engine = _ENGINE_NAMES.get(provider, provider)
        return f"dual password is not supported by {engine}; use the alternating strategy"
    return None


def next_standard(generator: Generator, randbelow: RandBelow = secrets.randbelow) -> str:
    return generator.generate(randbelow)


def next_structured(
    current: dict[str, str], rotate: list[str], generator: Generator, randbelow: RandBelow = secrets.randbelow
) -> dict[str, str]:
    """New field values for ``rotate``; every other field stays as it is."""
    missing = [f for f in rotate if f not in current]
    if missing:
        raise InvalidInput(f"the secret has no field(s) {', '.join(missing)}")
    return {k: (generator.generate(randbelow) if k in rotate else v) for k, v in current.items()}


def next_managed(
    current: dict[str, str],
    strategy: str,
    base_username: str,
    alt_username: str | None,
    generator: Generator,
    randbelow: RandBelow = secrets.randbelow,
) -> dict[str, str]:
    """The pending value of a database credential: a new password and, for alternating
    users, the other user of the pair (the live one stays valid during the grace period)."""
    if "username" not in current or "password" not in current:
        raise InvalidInput("a managed secret needs 'username' and 'password' fields")
    username = current["username"]
    if strategy == "alternating":
        if not alt_username:
            raise InvalidInput("the alternating strategy needs a second username")
        username = alt_username if current["username"] == base_username else base_username
    return current | {"username": username, "password": generator.generate(randbelow)}


def _croniter() -> type[croniter]:
    """croniter (and dateutil), imported when a cron schedule is first used: a server with no
    cron rotation starts without them."""
    from croniter import croniter

    return croniter
