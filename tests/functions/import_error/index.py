"""Imports a module nobody installed (line 3)."""

import edgefn_test_no_such_module


def handler(event, context):
    return event
