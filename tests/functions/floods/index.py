"""A handler that floods its output: thousands of lines, one very long, some with escapes."""

import sys


def handler(event, context):
    for n in range(int(event)):
        print(f"line {n} \x1b[31mred\x1b[0m")
    print("y" * 100_000, file=sys.stderr)
    sys.stdout.flush()
    return {"printed": event}
