"""Hot-reload fixture: tests copy this folder and rewrite VERSION to tell versions apart."""

import asyncio
import os
import pathlib

VERSION = 1


async def handler(event, context):
    event = event if isinstance(event, dict) else {}
    if event.get("touch"):  # tells a test that this call is in flight
        pathlib.Path(event["touch"]).write_text(str(os.getpid()))
    await asyncio.sleep(float(event.get("sleep", 0)))
    return {"version": VERSION, "n": event.get("n"), "pid": os.getpid(), "mark": os.environ.get("MARK")}
