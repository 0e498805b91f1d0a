"""uplink's actions on edgefn: run an action, stream its action_status responses (see README.md).

An action ``{"action_id", "name", "payload"}`` comes in; each response is
published as it is produced (this handler is a generator: every value it
yields is an output), to the device's action status topic. The action's own
deadline (uplink's per-action timeout) is kept here: past it the action ends
with one ``Failed`` response and nothing after it.
"""

from __future__ import annotations

import json
import os
import time

# Per-action timeouts in seconds, like uplink's `actions = [{ name = "...", timeout = ... }]`.
TIMEOUTS = json.loads(os.environ.get("ACTION_TIMEOUTS", "{}"))
DEFAULT_TIMEOUT = float(os.environ.get("ACTION_TIMEOUT", "60"))


class Action:
    """One action's responses: sequence from 1, millisecond timestamps."""

    def __init__(self, action_id: str, name: str, timeout: float) -> None:
        self.action_id = action_id
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.sequence = 0

    def response(self, state: str, progress: int, errors: list[str] | None = None) -> dict:
        self.sequence += 1
        return {
            "stream": "action_status",
            "sequence": self.sequence,
            "timestamp": int(time.time() * 1000),
            "action_id": self.action_id,
            "state": state,
            "progress": progress,
            "errors": errors or [],
        }

    def wait(self, seconds: float) -> bool:
        """Work for ``seconds``; False if the action's deadline came first (it stops there)."""
        left = self.deadline - time.monotonic()
        time.sleep(max(0.0, min(seconds, left)))
        return seconds < left


def handler(event, context):
    """Run the action in ``event``, yielding each action_status response as it happens."""
    if not isinstance(event, dict) or "action_id" not in event or "name" not in event:
        raise ValueError("an action needs action_id and name")  # an envelope on the error topic
    name = event["name"]
    payload = event.get("payload") or {}
    if isinstance(payload, str):  # uplink carries the payload as a JSON string
        payload = json.loads(payload) if payload.strip() else {}
    action = Action(str(event["action_id"]), name, float(TIMEOUTS.get(name, DEFAULT_TIMEOUT)))
    steps = STEPS.get(name)
    if steps is None:
        yield action.response("Failed", 0, [f"unknown action {name!r}; this app runs {sorted(STEPS)}"])
        return
    yield action.response("Running", 0)
    count, seconds = steps(payload)
    for step in range(1, count + 1):
        if not action.wait(seconds):
            yield action.response("Failed", 100 * (step - 1) // count, [f"action timed out after {action.timeout:g}s"])
            return
        if step < count:
            yield action.response("Progress", 100 * step // count)
    yield action.response("Completed", 100)


def _update_firmware(payload: dict) -> tuple[int, float]:
    return int(payload.get("steps", 4)), float(payload.get("step_seconds", 0.5))


def _reboot(payload: dict) -> tuple[int, float]:
    return 1, float(payload.get("step_seconds", 0.2))


def _diagnostics(payload: dict) -> tuple[int, float]:
    return int(payload.get("steps", 2)), float(payload.get("step_seconds", 1))


# Each action this app runs: (number of steps, seconds per step) from its payload.
STEPS = {"update_firmware": _update_firmware, "reboot": _reboot, "diagnostics": _diagnostics}
