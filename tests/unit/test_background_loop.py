"""The background loop of the server (api/app._every): its cadence counts from the start of
each run, and a job that says work is left runs again at once. Sleeps are recorded, not slept."""

from __future__ import annotations

import asyncio

import pytest

from sikker.api import app
from sikker.service.lease_jobs import Swept


def test_the_next_run_starts_one_interval_after_the_previous_start_or_at_once_with_work_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sleeps: list[float] = []
    runs: list[int] = []
    results = iter([Swept(100, True), Swept(100, True), Swept(3, False)])

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise asyncio.CancelledError

    def job() -> Swept:
        runs.append(1)
        return next(results)

    monkeypatch.setattr(app.asyncio, "sleep", fake_sleep)

    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await app._every(
                5.0, job, "lease sweeper", sooner=lambda r: r.wait_s(0) if isinstance(r, Swept) else None
            )

    asyncio.run(main())
    assert len(runs) == 3  # the first wait, then three runs with no wait between them
    assert sleeps[0] == 5.0 and 0.0 <= sleeps[1] < 5.0  # the interval minus the run's own time


def test_a_job_without_more_work_waits_the_rest_of_its_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    runs: list[int] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise asyncio.CancelledError

    monkeypatch.setattr(app.asyncio, "sleep", fake_sleep)

    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await app._every(2.0, lambda: runs.append(1), "maintenance")

    asyncio.run(main())
    assert len(runs) == 2 and sleeps[0] == 2.0 and all(0.0 <= s <= 2.0 for s in sleeps[1:])


def test_the_sweeper_wakes_at_the_next_lease_end_when_it_comes_before_the_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sleeps: list[float] = []
    results = iter([Swept(0, False, next_due_ms=1_500), Swept(0, False, next_due_ms=None)])

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise asyncio.CancelledError

    monkeypatch.setattr(app.asyncio, "sleep", fake_sleep)

    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await app._every(10.0, lambda: next(results), "lease sweeper", sooner=lambda r: r.wait_s(1_000))

    asyncio.run(main())
    assert sleeps[0] == 10.0 and sleeps[1] == 0.5  # the lease ends 0.5 s after "now"
    assert 9.0 < sleeps[2] <= 10.0  # nothing due: the whole interval


def test_a_lease_already_due_or_due_very_soon_waits_at_least_the_minimum() -> None:
    from sikker.service.lease_jobs import MIN_WAIT_S

    assert Swept(0, False, next_due_ms=900).wait_s(1_000) == MIN_WAIT_S
    assert Swept(0, True, next_due_ms=900).wait_s(1_000) == 0.0
    assert Swept(0, False).wait_s(1_000) is None
