print("importing index: this must not be taken for the handshake")


def handler(event, context):
    print("handling")
    return "ok"
