"""The chaos suite: a real manager, disturbed mid-run, loses no QoS 1 input and answers each one.

Every scenario (``support/chaos.py``, shared with ``bench/chaos.py``) counts
answers by the id each input carries: 0 lost, each input answered by its result
or by its own envelope of the expected type, no duplicate unless a kill of the
manager or the broker makes one legitimate (at-least-once), and the manager
still alive at the end, stopping cleanly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support import chaos


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(chaos.SCENARIOS))
async def test_no_qos1_input_is_lost_and_each_gets_its_result_or_its_own_envelope(name: str, tmp_path: Path) -> None:
    scenario = chaos.SCENARIOS[name]
    outcome = await chaos.run(scenario, tmp_path)
    print(f"\n{chaos.HEADER}\n{chaos.row(outcome)}")
    assert outcome.lost == 0, outcome
    assert outcome.wrong == {}, outcome
    assert outcome.strays == 0, outcome
    if not scenario.repeats:
        assert outcome.duplicated == 0, outcome
    assert outcome.alive and outcome.exit_code == 0, outcome
    assert outcome.left_running == 0, outcome  # nothing a runtime started outlives the manager
