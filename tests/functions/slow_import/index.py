"""Takes a second and a half to import (a cold start), then answers at once."""

import time

time.sleep(1.5)


def handler(event, context):
    return event
