def greet(event):
    return f"hello {event['name']}"
