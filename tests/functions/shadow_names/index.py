"""A function whose own modules have the names of edgefn's folders."""

import manager
import proto
import runtimes


def handler(event, context):
    return [manager.NAME, proto.NAME, runtimes.NAME]
