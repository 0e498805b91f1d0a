def setup():
    raise RuntimeError("config file missing")


setup()


def handler(event, context):
    return event
