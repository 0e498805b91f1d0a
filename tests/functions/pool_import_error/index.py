"""Fails to import: the module it needs is not installed."""

import edgefn_pool_test_missing_module  # noqa: F401


def handler(event, context):
    return event
