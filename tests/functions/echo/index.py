"""The runtime tests' workhorse: shows what the runtime handed over; one handler per behaviour."""

import os
import sys
import time

RESULTS = {
    "none": None,
    "empty": b"",
    "zero": 0,
    "false": False,
    "bytes": b"\x00\xffraw",
    "bytearray": bytearray(b"ba"),
    "str": "hi",
    "list": [1, "a", None],
    "intkeys": {1: "a"},
    "bigint": 2**70,
    "set": {1, 2},
    "object": object(),
}

arrivals = []
active = 0
most_active = 0


def handler(event, context):
    shown = event.hex() if isinstance(event, bytes) else event
    return {"type": type(event).__name__, "event": shown, "context": context}


def returns(event, context):
    return RESULTS[event]


def env(event, context):
    return {name: os.environ.get(name) for name in event}


def big(event, context):
    return b"x" * event


def wait_for_file(event, context):
    print("wait_for_file started", flush=True)
    while not os.path.exists(event):
        time.sleep(0.01)
    return "released"


def serial(event, context):
    global active, most_active
    active += 1
    most_active = max(most_active, active)
    time.sleep(0.005)
    arrivals.append(event["n"])
    active -= 1
    if event.get("fail"):
        raise ValueError(f"asked to fail at {event['n']}")
    return {"n": event["n"], "arrivals": list(arrivals), "most_active": most_active}


def prints(event, context):
    print("printed by the handler")
    return "ok"


def exits(event, context):
    sys.exit(4)


not_a_function = 42


async def _answer(event):
    return {"awaited": event}


def wraps_async(event, context):
    return _answer(event)


def raises_long(event, context):
    raise ValueError("x" * event)


def recurses(event, context):
    return recurses(event, context)
