"""The edge's joined writes (api/edge.py ``_JoinedWrites``): a response cycle's head goes out
with the first part of its body in one write, or alone at the loop's next step."""

from __future__ import annotations

import asyncio

from sikker.api.edge import _JoinedWrites


class Recorder(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[object] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.events.append(bytes(data))

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def is_closing(self) -> bool:
        return self.closing


async def _step() -> None:
    await asyncio.sleep(0)


def test_head_and_body_leave_in_one_write() -> None:
    async def run() -> list[object]:
        real = Recorder()
        joined = _JoinedWrites(real, asyncio.get_running_loop())
        joined.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        joined.write(b"{}")
        joined.write(b"")
        await _step()
        return real.events

    assert asyncio.run(run()) == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", b""]


def test_a_head_without_a_body_in_the_same_step_leaves_at_the_next_step() -> None:
    async def run() -> tuple[list[object], list[object]]:
        real = Recorder()
        joined = _JoinedWrites(real, asyncio.get_running_loop())
        joined.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        before = list(real.events)
        await _step()
        joined.write(b"HTTP/1.1 200 OK\r\n\r\n")  # written at once: only the first is held
        return before, real.events

    before, after = asyncio.run(run())
    assert before == []
    assert after == [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n"]


def test_closing_sends_a_held_head_first() -> None:
    async def run() -> list[object]:
        real = Recorder()
        joined = _JoinedWrites(real, asyncio.get_running_loop())
        joined.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
        joined.close()
        await _step()
        return real.events

    assert asyncio.run(run()) == [b"HTTP/1.1 500 Internal Server Error\r\n\r\n", "close"]
