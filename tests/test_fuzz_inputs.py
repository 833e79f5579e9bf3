"""Fuzzed input (hypothesis): random overrides, and run-folder / checkpoint files corrupted byte by byte.
Every input either loads or is refused with a one-line ConfigError/ValueError naming the key or the file;
never another exception, never a changed file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmlm.config import ConfigError, apply_overrides, shown_key, to_dict
from fmlm.experiment.presets import load_run_config, preset
from fmlm.experiment.run_folder import Timing, recorded_ids
from fmlm.reports.loading import load_results
from fmlm.train import checkpoint as ckpt
from fmlm.train.optim import OptimConfig, build_optimizers
from tests.experiment.test_stages import save, teacher_model

QUICK = preset("quick")


def _keys(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _keys(value, f"{prefix}{key}.")
        yield f"{prefix}{key}"


REAL_KEYS = sorted(_keys(to_dict(QUICK)))
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
keys = st.one_of(st.sampled_from(REAL_KEYS), st.text(min_size=1, max_size=20).filter(lambda k: "=" not in k))
values = st.one_of(st.text(max_size=20), st.sampled_from(["nan", "inf", "-1", "0", "1e999", "[]", "[1,2]", "true",
                                                          "null", "1,,2", " ", "x" * 300]),
                   st.integers(-10**20, 10**20).map(str), st.floats(allow_nan=True).map(repr))


@SETTINGS
@given(key=keys, value=values)
def test_an_override_loads_or_names_its_key_in_one_line(key, value):
    try:
        cfg = apply_overrides(QUICK, [f"{key}={value}"])
    except (ConfigError, ValueError) as err:
        message = str(err)
        assert "\n" not in message
        head = key.strip().split(".")[0]
        assert head in message or shown_key(head) in message or shown_key(key.strip()) in message, (key, message)
    else:
        assert type(cfg) is type(QUICK)


def _mutations():
    """A list of byte edits: truncate at a fraction, overwrite a span, insert bytes."""
    edit = st.one_of(
        st.tuples(st.just("cut"), st.floats(0, 1)),
        st.tuples(st.just("put"), st.floats(0, 1), st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=8)),
    )
    return st.lists(edit, min_size=1, max_size=3)


def _apply(data: bytes, edits) -> bytes:
    for edit in edits:
        at = int(edit[1] * len(data))
        if edit[0] == "cut":
            data = data[:at]
        elif edit[0] == "put":
            data = data[:at] + edit[2] + data[at + len(edit[2]):]
        else:
            data = data[:at] + edit[2] + data[at:]
    return data


def _loads_or_one_line(call, path: Path) -> None:
    before = path.read_bytes()
    try:
        call()
    except (ConfigError, ValueError) as err:
        message = str(err)
        assert "\n" not in message, message
        assert path.name in message, message
    assert path.read_bytes() == before  # a loader never writes


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A run folder and a checkpoint written by the project itself."""
    root = tmp_path_factory.mktemp("pristine")
    run = root / "run"
    run.mkdir()
    (run / "experiment.json").write_text(json.dumps(to_dict(QUICK), indent=2))
    record = {"id": "teacher_sde_2_w3_c1p5_warm_s0", "model": "teacher", "sampler": "sde", "steps": 2, "seed": 0,
              "gen_ppl": 12.5, "entropy": 2.25, "n_samples": 4}
    (run / "results.jsonl").write_text(json.dumps(record) + "\n" + json.dumps({**record, "id": "b", "seed": 1}) + "\n")
    timing = Timing(run / "timing.json")
    timing.add("train teacher", 3.0)
    save(root / "checkpoint", "teacher", teacher_model())
    return root


LOADERS = {
    "run/experiment.json": lambda root: load_run_config(root / "run"),
    "run/results.jsonl": lambda root: (load_results(root / "run"), recorded_ids(root / "run")),
    "run/timing.json": lambda root: Timing(root / "run" / "timing.json"),
    "checkpoint/meta.json": lambda root: ckpt.read_meta(root / "checkpoint"),
    "checkpoint/denoiser.json": lambda root: ckpt.read_denoiser_config(root / "checkpoint"),
    "checkpoint/ema.safetensors": lambda root: ckpt.load_weights(teacher_model(), root / "checkpoint", "ema"),
    "checkpoint/optim.pt": lambda root: ckpt.load_optimizers(
        build_optimizers(teacher_model(), OptimConfig(optimizer="adamw")), root / "checkpoint"),
}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_a_corrupted_file_loads_or_names_itself_in_one_line(pristine, tmp_path_factory, name):
    work = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(pristine, work, dirs_exist_ok=True)
    path = work / name
    original = (pristine / name).read_bytes()

    @settings(max_examples=40, deadline=None)
    @given(edits=_mutations())
    def check(edits):
        path.write_bytes(_apply(original, edits))
        _loads_or_one_line(lambda: LOADERS[name](work), path)

    check()
