#!/usr/bin/env python3
"""Say hi: the Baetyl docs' example handler.

A JSON object comes back with the message's context and a greeting added; any
other event (bytes, a string, a number) is wrapped the way Baetyl's second
example does it.
"""


def handler(event, context):
    """Add the context and a greeting to the event."""
    if isinstance(event, dict):
        result = event
    elif isinstance(event, bytes):
        result = {"bytes": event.decode("utf-8", errors="replace")}
    else:
        result = {"msg": event}
    result["functionName"] = context["functionName"]
    result["functionInvokeID"] = context["functionInvokeID"]
    result["messageQOS"] = context["messageQOS"]
    result["messageTopic"] = context["messageTopic"]
    result["sayhi"] = "hello, world"
    return result
