"""Handlers for the pool tests: each misbehaves in one way a pool must survive."""

import asyncio
import os
import time

in_flight = 0
most_in_flight = 0


def pid(event, context):
    return {"pid": os.getpid(), "event": event}


def sleep(event, context):
    time.sleep(float(event.get("sleep", 0.2)))
    return {"pid": os.getpid()}


async def overlap(event, context):
    """Async: reports how many calls this instance ran at once."""
    global in_flight, most_in_flight
    in_flight += 1
    most_in_flight = max(most_in_flight, in_flight)
    try:
        await asyncio.sleep(float(event.get("sleep", 0.2)))
    finally:
        in_flight -= 1
    return {"pid": os.getpid(), "most": most_in_flight}


def crash(event, context):
    """Dies without a word when asked to (event {"status": n}), else answers."""
    if isinstance(event, dict) and "status" in event:
        os._exit(event["status"])
    return {"pid": os.getpid()}


def crash_unless_marked(event, context):
    """Dies the first time (creating the marker file), answers once the marker exists."""
    marker = event["marker"]
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os._exit(9)
    return {"pid": os.getpid(), "survived": True}


def hang(event, context):
    while True:
        time.sleep(1)


def wait_for_file(event, context):
    while not os.path.exists(event["file"]):
        time.sleep(0.01)
    return {"pid": os.getpid(), "released": event["file"]}


def big(event, context):
    return b"x" * int(event)


def bomb(event, context):
    """Allocates 10 MiB at a time (touched, so resident) until stopped."""
    hoard = []
    while True:
        hoard.append(bytearray(os.urandom(1)) * (10 * 1024 * 1024))
        time.sleep(0.01)


def environment(event, context):
    return dict(os.environ)


def misbehave(event, context):
    """Answers at once unless the event asks it to hang, eat memory or sleep."""
    if event.get("hang"):
        hang(event, context)
    if event.get("bomb"):
        bomb(event, context)
    time.sleep(float(event.get("sleep", 0)))
    return {"pid": os.getpid(), "n": event.get("n")}


def fork_sleeper(event, context):
    """Starts a grandchild that would sleep for an hour, and says its pid."""
    import subprocess

    child = subprocess.Popen(["sleep", "3600"], start_new_session=False)
    return {"pid": os.getpid(), "grandchild": child.pid}


def fork_hog(event, context):
    """Starts a grandchild that holds 300 MiB of resident memory, then waits."""
    import subprocess
    import sys

    hog = "import os, time; x = bytearray(os.urandom(1)) * (300 * 1024 * 1024); time.sleep(3600)"
    child = subprocess.Popen([sys.executable, "-c", hog])
    child.wait()
    return {"pid": os.getpid()}
