"""Handlers for the end-to-end routing tests: one per SPEC §5 rule."""

import asyncio
import os


def echo(event, context):
    return event


def describe(event, context):
    kind = "bytes" if isinstance(event, bytes) else type(event).__name__
    return {"kind": kind, "event": event.decode() if isinstance(event, bytes) else event, "context": context}


def returns_none(event, context):
    return None


def returns_empty_bytes(event, context):
    return b""


def returns_zero(event, context):
    return 0


def returns_bytes(event, context):
    return b"\x00raw\xff"


def unserializable(event, context):
    return {"when": object()}


def raises(event, context):
    return helper(event)


def helper(event):
    raise TypeError(f"cannot handle {event!r}")


def environment(event, context):
    return dict(os.environ)


async def slow(event, context):
    await asyncio.sleep(float(event.get("sleep", 0.5)) if isinstance(event, dict) else 0.5)
    return event
