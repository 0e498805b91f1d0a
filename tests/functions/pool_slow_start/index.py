"""Takes far longer to import than any starttimeout in the tests."""

import time

time.sleep(60)


def handler(event, context):
    return event
