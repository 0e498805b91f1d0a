"""What an instance sees of where it runs: for the standby tests (a standby takes these on late)."""

import os
import time


def where(event, context):
    return {"pid": os.getpid(), "cwd": os.getcwd(), "greeting": os.environ.get("GREETING"),
            "function": os.environ.get("EDGEFN_FUNCTION_NAME"), "standby": os.environ.get("EDGEFN_STANDBY"),
            "tz": time.strftime("%Z", time.localtime(0))}
