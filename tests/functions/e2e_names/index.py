"""A function whose own modules are named like edgefn's folders: they must still import."""

import manager
import proto
import runtimes


def handler(event, context):
    return {"manager": manager.NAME, "runtimes": runtimes.NAME, "proto": proto.NAME}
