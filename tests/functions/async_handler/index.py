"""async def handlers: they run concurrently on the runtime's event loop."""

import asyncio

gates = {}


async def handler(event, context):
    gate = gates.setdefault(event["gate"], asyncio.Event())
    if event.get("open"):
        gate.set()
        return "opened"
    await gate.wait()
    return "passed"


async def fails(event, context):
    await asyncio.sleep(0)
    raise KeyError(event)
