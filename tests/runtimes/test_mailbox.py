"""runtimes/mailbox.py: items posted from other threads run on the loop in order, many per wakeup."""

from __future__ import annotations

import asyncio
import threading

import pytest

from edgefn.runtimes.mailbox import mailbox

pytestmark = pytest.mark.timeout(30)


async def test_items_from_a_thread_run_on_the_loop_in_posting_order_with_few_wakeups() -> None:
    loop = asyncio.get_running_loop()
    box = mailbox(loop)
    assert mailbox(loop) is box  # one per loop: one order for everything posted to it
    seen: list[int] = []
    threads: list[int] = []
    done = asyncio.Event()
    wakeups = 0
    original = loop.call_soon_threadsafe

    def counting(callback, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal wakeups
        wakeups += 1
        return original(callback, *args, **kwargs)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        def record(number: int) -> None:
            seen.append(number)
            threads.append(threading.get_ident())
            if number == 999:
                done.set()

        worker = threading.Thread(target=lambda: [box.post(record, n) for n in range(1000)])
        worker.start()
        await asyncio.wait_for(done.wait(), 10)
        worker.join()
    finally:
        del loop.call_soon_threadsafe
    assert seen == list(range(1000))
    assert set(threads) == {threading.get_ident()}  # all on the loop's thread
    assert wakeups < 1000  # posts that piled up while the loop was busy shared a wakeup
