"""Uses a package vendored into the codedir (pip install -t .)."""

import tinylib


def handler(event, context):
    return tinylib.shout(event)
