"""A hub link's acknowledgement waits: one timer for every deadline, failures that say what."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from edgefn.manager.link import HubDisconnected, HubError, Link

pytestmark = pytest.mark.timeout(10)


def link() -> Link:
    return Link(aiomqtt.Client("127.0.0.1", 1), generation=1)  # never connected: waits only


async def test_a_wait_without_its_acknowledgement_fails_naming_what_it_waited_for() -> None:
    with pytest.raises(HubError, match=r"no acknowledgement of publish to 'a/b' within 0.05s"):
        await link().wait(1, 0.05, "publish to", "a/b")


async def test_a_short_deadline_after_a_long_one_still_fires_first() -> None:
    one = link()
    long_wait = asyncio.create_task(one.wait(1, 30.0, "publish to", "slow"))
    await asyncio.sleep(0)
    with pytest.raises(HubError, match="subscribe to"):
        await one.wait(2, 0.05, "subscribe to", [("t", 1)])
    assert not long_wait.done()
    one.resolve(1, "acked")
    assert await long_wait == "acked"
    assert one.waiters == {}


async def test_a_lost_link_fails_every_wait_at_once() -> None:
    one = link()
    waits = [asyncio.create_task(one.wait(mid, 30.0, "publish to", f"t/{mid}")) for mid in (1, 2, 3)]
    await asyncio.sleep(0)
    one.fail("connection lost")
    for wait in waits:
        with pytest.raises(HubDisconnected, match="connection lost"):
            await wait


async def test_a_cancelled_wait_leaves_nothing_behind() -> None:
    one = link()
    wait = asyncio.create_task(one.wait(1, 30.0, "publish to", "t"))
    await asyncio.sleep(0)
    wait.cancel()
    with pytest.raises(asyncio.CancelledError):
        await wait
    assert one.waiters == {}
