from helper import explode


def handler(event, context):
    return explode(event)
