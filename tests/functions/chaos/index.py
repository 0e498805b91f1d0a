"""The chaos suite's function: echoes its input (which carries the message's id), or misbehaves.

``{"id": N, "do": WHAT, ...}`` chooses the misbehaviour; anything else (raw
bytes too) is echoed as it came.
"""

import os
import sys
import time

BLOCK = 16 * 1024 * 1024


def handler(event, context):
    what = event.get("do") if isinstance(event, dict) else None
    if what is None:
        return event
    return ACTIONS[what](event)


def slow(event):
    time.sleep(float(event.get("sleep", 0.05)))
    return event


def hang(event):
    time.sleep(3600)


def hog(event):
    blocks = []
    while True:  # the memory watchdog kills the process group long before this ends
        blocks.append(b"x" * BLOCK)
        time.sleep(0.02)


def exits(event):
    os._exit(3)


def forks(event):
    if os.fork() == 0:  # the child outlives the call, holding the instance's stdout and stderr
        time.sleep(30)
        os._exit(0)
    return event


def flood(event):
    for number in range(int(event.get("lines", 20000))):
        print(f"flood {event['id']} line {number} " + "z" * 100)
    sys.stdout.flush()
    return event


def big(event):
    return {"id": event["id"], "pad": "b" * int(event["size"])}


ACTIONS = {"slow": slow, "hang": hang, "hog": hog, "exit": exits, "fork": forks, "flood": flood, "big": big}
