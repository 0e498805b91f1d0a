"""A Baetyl docs-style function: says hi, or raises what the event asks for."""


def handler(event, context):
    if isinstance(event, dict) and "err" in event:
        raise TypeError(event["err"])
    return {"hi": event, "functionName": context["functionName"], "instanceName": context["instanceName"]}
