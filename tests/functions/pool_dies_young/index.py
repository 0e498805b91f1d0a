"""Loads fine, then dies on its own a moment after (a crash loop)."""

import os
import threading


def _die() -> None:
    os._exit(5)


threading.Timer(0.5, _die).start()


def handler(event, context):
    return event
