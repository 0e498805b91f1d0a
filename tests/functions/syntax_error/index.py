"""A handler with a syntax error on line 4."""


def handler(event, context)
    return event
