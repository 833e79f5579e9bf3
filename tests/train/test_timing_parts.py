"""``Timing.part`` counts a part's time as it goes: a part that fails (or is stopped by a signal) still
counts, a resumed call adds to it, and the file is rewritten while the part runs."""

import json
import time

import pytest

from fmlm.experiment.run_folder import Timing


def _stages(path):
    return json.loads(path.read_text())["stages"]


def test_a_part_that_raises_still_counts_and_a_resumed_call_adds_to_it(tmp_path):
    path = tmp_path / "timing.json"
    Timing(path).add("prepare data", 1.0)
    with pytest.raises(RuntimeError, match="stopped"):
        with Timing(path).part("train teacher"):
            time.sleep(0.2)
            raise RuntimeError("stopped")
    first = _stages(path)["train teacher"]
    assert 0.2 <= first < 5.0
    with Timing(path).part("train teacher"):  # the run again: adds to the interrupted part
        time.sleep(0.1)
    data = json.loads(path.read_text())
    assert list(data["stages"]) == ["prepare data", "train teacher"]
    assert data["stages"]["train teacher"] >= first + 0.1
    assert data["total_s"] == pytest.approx(1.0 + data["stages"]["train teacher"])
    assert [p.name for p in tmp_path.iterdir()] == ["timing.json"]


def test_a_running_part_is_written_periodically(tmp_path):
    path = tmp_path / "timing.json"
    with Timing(path).part("train teacher", every_s=0.05):
        deadline = time.monotonic() + 5.0
        while not (path.exists() and _stages(path).get("train teacher", 0.0) >= 0.1):
            assert time.monotonic() < deadline, "timing.json was not written while the part ran"
            time.sleep(0.02)
    assert _stages(path)["train teacher"] >= 0.1
