def explode(event):
    raise ValueError(f"bad input: {event!r}")
