"""Fails to compile."""


def handler(event, context)
    return event
