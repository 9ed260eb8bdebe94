"""Run `sikker agent` but SIGKILL it at one step of a rotation (test-only fault injection).

    python tests/helpers/crashing_agent.py STEP -- agent start --secret ID --once

STEP: before-apply | after-apply | after-verify | after-confirm. The production code has
no hook for this: the step functions are wrapped here, before the CLI runs.
"""

from __future__ import annotations

import os
import signal
import sys

from sikker.agent import server
from sikker.engines import mysql, postgresql


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def wrap(owner: type, name: str, before: bool) -> None:
    original = getattr(owner, name)

    def wrapper(self: object, *args: object, **kwargs: object) -> object:
        if before:
            die()
        result = original(self, *args, **kwargs)
        if not before:
            die()
        return result

    setattr(owner, name, wrapper)


def main() -> None:
    step, rest = sys.argv[1], sys.argv[3:]
    providers = (mysql.MySQLProvider, postgresql.PostgresProvider)
    if step == "before-apply":
        for provider in providers:
            wrap(provider, "apply", before=True)
    elif step == "after-apply":
        for provider in providers:
            wrap(provider, "apply", before=False)
    elif step == "after-verify":
        wrap(server.AgentApi, "confirm", before=True)  # verify passed; the confirm never leaves
    elif step == "after-confirm":
        wrap(server.AgentApi, "confirm", before=False)
    else:
        raise SystemExit(f"unknown step {step}")
    from sikker.cli.main import cli

    sys.argv = ["sikker", *rest]
    cli.main(standalone_mode=True)


if __name__ == "__main__":
    main()
