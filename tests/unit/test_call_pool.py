"""``api.context.call``: service calls on the API's thread pool, in the caller's context, and
in a forked worker on a pool of its own (the parent's threads do not survive the fork)."""

from __future__ import annotations

import asyncio
import contextvars
import os

from sikker.api.context import call

REQUEST = contextvars.ContextVar[str]("request")


def test_a_call_runs_off_the_loop_in_the_callers_context() -> None:
    async def main() -> tuple[str, bool]:
        REQUEST.set("req-1")
        loop = asyncio.get_running_loop()
        return await call(lambda: (REQUEST.get(), asyncio._get_running_loop() is not loop))

    assert asyncio.run(main()) == ("req-1", True)


def test_a_forked_worker_gets_answers_from_its_own_pool() -> None:
    assert asyncio.run(call(lambda: 1)) == 1  # the parent's pool now has a thread, idle
    pid = os.fork()
    if pid == 0:  # the worker: with the parent's pool, this call would wait forever
        try:
            code = 0 if asyncio.run(asyncio.wait_for(call(lambda: 2), 10)) == 2 else 1
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
