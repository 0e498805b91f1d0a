"""Handlers for the direct-call tests (gRPC server and ``edgefn call``)."""

import os
import sys
import time


def echo(event, context):
    return event


def context_of(event, context):
    return context


def nothing(event, context):
    return None


def raw(event, context):
    return b"\x00raw\xff"


def fails(event, context):
    return check(event)


def check(event):
    raise ValueError(f"bad input {event!r}")


def crashes(event, context):
    # Each attempt leaves a line, so a test can count them.
    with open(event["log"], "a") as log:
        log.write("attempt\n")
    os._exit(1)


def chatty(event, context):
    print("hello from the handler")
    print("and from its stderr", file=sys.stderr)
    return {"ok": True}


def sleeps(event, context):
    time.sleep(float(event))
    return event
