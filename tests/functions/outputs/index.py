"""Handlers that publish before they return: context.publish, generators, async generators."""

import asyncio
import threading
import time


def publishes(event, context):
    """``n`` outputs to the rule's topic, one to a topic of its own, then the result."""
    for i in range(event.get("n", 2)):
        context.publish({"i": i})
    context.publish(None)  # nothing
    context.publish(b"raw", topic=event.get("raw_topic", "elsewhere/raw"), qos=0, retain=True)
    return {"done": context["messageTopic"], "dict": isinstance(context, dict)}


async def publishes_async(event, context):
    for i in range(event.get("n", 2)):
        context.publish({"i": i})
        await asyncio.sleep(0)
    return {"done": True}


def generates(event, context):
    for i in range(event.get("n", 3)):
        yield {"step": i}


async def generates_async(event, context):
    for i in range(event.get("n", 3)):
        await asyncio.sleep(0)
        yield {"step": i}


def from_a_thread(event, context):
    """Outputs from a thread of the handler's own, before it returns."""
    worker = threading.Thread(target=lambda: context.publish("from a thread"))
    worker.start()
    worker.join()
    return "after"


def bad_topic(event, context):
    try:
        context.publish(1, topic="a/+/b")
    except ValueError as exc:
        return {"refused": str(exc)}
    return {"refused": None}


def then_fails(event, context):
    context.publish({"before": 1})
    raise RuntimeError("after one output")


def slow(event, context):
    """An output every ``every`` seconds, ``n`` of them, then the result (timeouts, kills)."""
    for i in range(event.get("n", 5)):
        context.publish({"i": i})
        time.sleep(event.get("every", 0.2))
    return {"done": True}
