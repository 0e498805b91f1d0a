"""A handler whose module cannot be imported: its dependency is missing."""

import edgefn_no_such_module  # noqa: F401


def handler(event, context):
    return event
