__version__ = "1.0"


def shout(text):
    return text.upper()
