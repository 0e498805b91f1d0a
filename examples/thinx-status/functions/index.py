"""THiNX's MQTT conversations as edgefn handlers.

``registration`` answers a device's registration on its device channel with
``OK`` or ``UPDATE_AVAILABLE``; ``notification`` relays an actionable
notification to the console, extended with the device's udid and nid;
``response`` relays the user's answer back to the device.
"""

import os


def _version(text):
    """'1.7.24' → (1, 7, 24); anything that is not a number counts as 0."""
    parts = []
    for part in str(text).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _device(topic):
    """(owner, udid) of a '/owner/udid/...' topic."""
    levels = topic.split("/")
    return levels[1], levels[2]


def registration(event, context):
    """A registration on '/owner/udid/status' → OK or UPDATE_AVAILABLE (other status messages: nothing)."""
    if not isinstance(event, dict) or "registration" not in event:
        return None  # {"status": "connected"} and friends: nothing to answer
    device = event["registration"]
    if not isinstance(device, dict) or not (device.get("version") or device.get("commit")):
        raise ValueError("a registration needs a version (or a commit) to compare")
    owner, udid = _device(context["messageTopic"])
    latest = os.environ.get("LATEST_VERSION", "0")
    latest_commit = os.environ.get("LATEST_COMMIT", "")
    if device.get("commit") and latest_commit:
        current = device["commit"] == latest_commit  # THiNX matches the commit when there is one
    else:
        current = _version(device.get("version", "0")) >= _version(latest)
    answer = {"success": True, "status": "OK" if current else "UPDATE_AVAILABLE", "owner": owner, "udid": udid}
    if not current:
        answer["version"] = latest
    return {"registration": answer}


def notification(event, context):
    """An actionable notification from a device → the console, with udid and nid (others: nothing)."""
    if not isinstance(event, dict) or not isinstance(event.get("notification"), dict):
        return None
    owner, udid = _device(context["messageTopic"])
    relayed = dict(event["notification"])
    relayed["udid"] = udid
    relayed.setdefault("nid", f"nid:{udid}")  # one pending transaction per device, as THiNX does
    relayed["owner"] = owner
    return {"notification": relayed}


def response(event, context):
    """The user's answer from the console → the device: the notification marked done."""
    if not isinstance(event, dict) or "response" not in event:
        raise ValueError('expected {"nid": ..., "response": true|false|"text"}')
    return {"notification": {"nid": event.get("nid"), "response": event["response"], "done": True}}
