from .helper import greet


def handler(event, context):
    return greet(event)
