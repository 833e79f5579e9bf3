"""A run folder is bound to one configuration; the accepted changes only add measurements
(more seeds, step counts or sweeps). Bad input is refused before anything is written."""

import dataclasses
import json

import pytest

from fmlm.config import apply_overrides, to_dict
from fmlm.experiment import preset
from fmlm.experiment.run import bind_run_folder, run_experiment
from fmlm.experiment.run_folder import Timing, check_stages


def with_seeds(cfg, seeds):
    return dataclasses.replace(cfg, evaluation=dataclasses.replace(cfg.evaluation, seeds=seeds))


def test_more_seeds_are_accepted_and_recorded(tmp_path):
    cfg = preset("quick")
    bind_run_folder(tmp_path, cfg)
    bind_run_folder(tmp_path, cfg)  # same configuration: nothing to do
    bind_run_folder(tmp_path, with_seeds(cfg, (0, 1, 2)))
    stored = json.loads((tmp_path / "experiment.json").read_text())
    assert stored == to_dict(with_seeds(cfg, (0, 1, 2)))
    assert not list(tmp_path.glob("*.tmp"))


def test_more_settings_are_accepted_and_a_field_new_to_the_folder_too(tmp_path):
    cfg = preset("quick")
    bind_run_folder(tmp_path, cfg)
    old = json.loads((tmp_path / "experiment.json").read_text())
    del old["evaluation"]["ode_steps"]  # a folder written before the field existed
    (tmp_path / "experiment.json").write_text(json.dumps(old))
    more = dataclasses.replace(cfg, evaluation=dataclasses.replace(cfg.evaluation, ode_steps=(1, 4), fp_iterations=(1, 2, 3)))
    bind_run_folder(tmp_path, more)
    assert json.loads((tmp_path / "experiment.json").read_text()) == to_dict(more)


def test_a_training_field_new_to_the_folder_counts_as_its_default(tmp_path):
    cfg = preset("quick")
    bind_run_folder(tmp_path, cfg)
    old = json.loads((tmp_path / "experiment.json").read_text())
    del old["train_teacher"]["optim"]["decay_fraction"]  # a folder written before the field existed
    (tmp_path / "experiment.json").write_text(json.dumps(old))
    bind_run_folder(tmp_path, cfg)  # the default is what that run did
    decayed = dataclasses.replace(cfg, train_teacher=dataclasses.replace(
        cfg.train_teacher, optim=dataclasses.replace(cfg.train_teacher.optim, decay_fraction=0.3)))
    with pytest.raises(ValueError, match="train_teacher"):
        bind_run_folder(tmp_path, decayed)


@pytest.mark.parametrize(
    "change",
    [
        lambda c: with_seeds(c, (1,)),  # drops seed 0
        lambda c: dataclasses.replace(c, evaluation=dataclasses.replace(c.evaluation, n_samples=16)),
        lambda c: dataclasses.replace(c, evaluation=dataclasses.replace(c.evaluation, max_tokens=64)),
        lambda c: dataclasses.replace(c, evaluation=dataclasses.replace(c.evaluation, evaluator="gpt2")),
        # the sweeps' candidates decide the chosen values, and so the headline settings
        lambda c: dataclasses.replace(c, evaluation=dataclasses.replace(c.evaluation, w_sweep=(1.0, 2.0))),
        lambda c: dataclasses.replace(c, evaluation=dataclasses.replace(c.evaluation, validation_seeds=(7,))),
        lambda c: dataclasses.replace(c, train_teacher=dataclasses.replace(c.train_teacher, max_steps=13)),
    ],
)
def test_other_changes_are_refused_and_leave_the_folder_alone(tmp_path, change):
    cfg = preset("quick")
    bind_run_folder(tmp_path, cfg)
    before = (tmp_path / "experiment.json").read_text()
    with pytest.raises(ValueError, match="another configuration") as err:
        bind_run_folder(tmp_path, change(cfg))
    assert "\n" not in str(err.value)
    assert (tmp_path / "experiment.json").read_text() == before


def test_timer_adds_across_calls_keeps_stage_order_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "timing.json"
    first = Timing(path)
    first.add("train teacher", 2.0)
    first.add("prepare data", 1.0)
    Timing(path).add("train teacher", 0.5)  # a resumed call adds to what the folder holds
    data = json.loads(path.read_text())
    assert list(data["stages"]) == ["train teacher", "prepare data"]
    assert data["stages"]["train teacher"] == 2.5 and data["total_s"] == 3.5
    assert [p.name for p in tmp_path.iterdir()] == ["timing.json"]


def test_an_empty_stage_list_is_refused():
    with pytest.raises(ValueError, match=r"^no stage given; choose one or more of \['teacher'"):
        check_stages(())


@pytest.mark.parametrize("case", ["run is a file", "run below a file", "no stages", "bad device"])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, case):
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    run, stages, device = tmp_path / "run", ("teacher",), "cpu"
    if case == "run is a file":
        run = afile
    elif case == "run below a file":
        run = afile / "run"
    elif case == "no stages":
        stages = ()
    else:
        device = "bogus"
    cfg = apply_overrides(preset("quick"), [f"cache_dir={tmp_path / 'cache'}"])
    with pytest.raises(ValueError) as err:
        run_experiment(cfg, run, device=device, progress=False, stages=stages)
    assert "\n" not in str(err.value)
    assert afile.read_text() == "keep me\n" and [p.name for p in tmp_path.iterdir()] == ["afile"]
