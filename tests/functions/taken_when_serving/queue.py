# Named like a module the runtime imports to serve (not to --check): refused either way.
def handler(event, context):
    return event
