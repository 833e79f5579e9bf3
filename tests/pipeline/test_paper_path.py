"""The paper preset's code path (hub-style GPT-2 encoder and evaluator, latents encoded on the
fly, Muon, ELF-B-style stage chain) at tiny size, end to end, without any download."""

import json
import shutil

from fmlm.data import EncodedRows, load_meta as data_meta, prepare, rows_for
from fmlm.experiment.run import run_experiment
from fmlm.train import checkpoint as ckpt
from fmlm.experiment.plan import candidates, preset_value
from fmlm.experiment.sweep_choice import SWEEPS, Sweep, choose, sweep_points
from tests.pipeline.conftest import tiny_paper_config


def chosen_values(records: list[dict], cfg, run) -> dict:
    """Each sweep's choice from the validation-seed records (the preset's value unless the best point is resolved
    better), checked against the headline records it set."""
    e = cfg.evaluation
    chosen = {}
    for sweep in SWEEPS:
        mine = [r for r in records if r["model"] == sweep.model and r["sweep"] == sweep.knob]
        assert {r["seed"] for r in mine} == set(e.validation_seeds)
        assert sorted(r[sweep.knob] for r in mine) == sorted(candidates(cfg, sweep))
        chosen[sweep] = choose(sweep_points(mine, sweep, e.validation_seeds, run_dir=run),
                               preset=preset_value(cfg, sweep)).value
    gamma_sweep = [r for r in records if r["model"] == "flow-map" and r["sweep"] == "gamma"]
    assert {r["w"] for r in gamma_sweep} == {chosen[Sweep("flow-map", "w")]}  # swept at the chosen w
    heads = [r for r in records if r["sweep"] is None]
    assert {r["seed"] for r in heads if r["model"] != "reference"} == set(e.seeds)
    assert {r["w"] for r in heads if r["model"] == "flow-map"} == {chosen[Sweep("flow-map", "w")]}
    for model in ("flow-map", "flow-map-nosc"):
        at_sweep = [r["gamma"] for r in heads if r["model"] == model and r["steps"] == e.sweep_steps]
        assert at_sweep == [chosen[Sweep(model, "gamma")]], model
    assert {r["churn"] for r in heads if r["sampler"] == "sde"} == {chosen[Sweep("teacher", "churn")]}
    return chosen


def test_paper_preset_runs_all_stages_at_tiny_size(tmp_path, text_folder, tiny_gpt2):
    cfg = tiny_paper_config(tmp_path, text_folder, tiny_gpt2)
    assert cfg.preset == "paper" and cfg.train_teacher.optim.optimizer == "muon" and not cfg.data.cache_latents
    run = tmp_path / "run"
    run_experiment(cfg, run, device="cpu", progress=False)
    data = prepare(cfg.data, cfg.cache_dir)
    assert isinstance(rows_for(data, "train"), EncodedRows)  # paper scale: no latent cache
    for stage, expected in [("teacher", 0), ("fixed-point", 4), ("flow-map", 4), ("flow-map-nosc", 0)]:
        meta = ckpt.read_meta(run / "stages" / stage / "checkpoint")
        assert meta.complete and meta.step == 2
        assert ckpt.read_denoiser_config(run / "stages" / stage / "checkpoint").phase_tokens == expected
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    models = {r["model"] for r in records}
    assert {"reference", "untrained", "teacher", "teacher-nosc", "fixed-point", "flow-map", "flow-map-nosc"} <= models
    for r in records:
        assert r["n_samples"] == 2 or r["model"] == "reference" or r["sweep"] == "decode"
        per_sample = (run / r["samples_file"]).read_text().splitlines()
        assert len(per_sample) == r["n_samples"]
    ctm = [r for r in records if r["model"] == "flow-map" and r["sweep"] is None]
    assert sorted(r["steps"] for r in ctm) == [1, 2, 4] and all(r["nfe"] == r["steps"] + 1 for r in ctm)
    chosen = chosen_values(records, cfg, run)
    ode = sorted((r["model"], r["steps"], r["sampler"], r["w"]) for r in records if r["sweep"] == "ode")
    w = chosen[Sweep("flow-map", "w")]
    assert ode == [("fixed-point", 1, "euler", w), ("fixed-point", 3, "euler", w), ("teacher", 3, "euler", 3.0),
                   ("teacher-nosc", 1, "euler", None), ("teacher-nosc", 3, "euler", None)]
    reference = next(r for r in records if r["model"] == "reference")
    decoded = {r["model"]: r for r in records if r["sweep"] == "decode"}
    assert sorted(decoded) == sorted(["teacher", "teacher-nosc", "fixed-point", "flow-map", "flow-map-nosc"])
    for r in decoded.values():
        assert r["n_samples"] == reference["n_samples"] and r["nfe"] == 1 and 0 <= r["token_accuracy"] <= 1
    fp = json.loads((run / "fixed_point.json").read_text())
    assert fp["n_rows"] == 2 and fp["student_dist"] >= 0
    assert len(fp["student_dists"]) == len(fp["teacher_first_iterate_dists"]) == 2  # per-row distances, one a row
    assert abs(fp["student_dist"] - sum(fp["student_dists"]) / 2) <= 1e-6 * fp["student_dist"]  # float32 mean of 2
    guidance = json.loads((run / "guidance.json").read_text())
    assert guidance["w"] == 5.0 and len(guidance["by_t"]) == 5 and not list(run.glob("*.tmp"))
    # A finished stage becomes a model folder that loads and samples like an imported one.
    from fmlm.cli import main
    from fmlm.models import load_model

    folder = tmp_path / "models" / "flow-map"
    assert main(["export", str(run / "stages" / "flow-map"), "--out", str(folder)]) == 0
    loaded = load_model(folder)
    trained = ckpt.load_denoiser(run / "stages" / "flow-map" / "checkpoint", "ema")
    for name, tensor in trained.state_dict().items():
        assert loaded.model.state_dict()[name].equal(tensor), name
    assert loaded.info.stage == "flow-map" and loaded.info.whitening_sigma == data_meta(data)["sigma"]
    assert loaded.info.flow == cfg.flow and set(loaded.info.samplers) == {"1", "2", "4"}
    out = tmp_path / "exported.jsonl"
    assert main(["sample", "--model", str(folder), "--steps", "2", "--n", "2", "--device", "cpu",
                 "--out", str(out)]) == 0
    assert [json.loads(line)["nfe"] for line in out.read_text().splitlines()] == [3, 3]
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run / "stages" / "teacher" / "checkpoint", unfinished)
    meta = json.loads((unfinished / "meta.json").read_text())
    (unfinished / "meta.json").write_text(json.dumps({**meta, "complete": False}))
    assert main(["export", str(unfinished), "--out", str(tmp_path / "nope")]) == 2
    assert not (tmp_path / "nope").exists()
    # A sampler that does not fit the checkpoint is refused before sampling.
    base = ["sample", "--run-dir", str(run), "--n", "1", "--device", "cpu", "--out", str(tmp_path / "x.jsonl")]
    assert main([*base, "--stage", "teacher", "--checkpoint", str(run / "stages" / "flow-map" / "checkpoint")]) == 2
    assert main([*base, "--stage", "flow-map", "--checkpoint", str(run / "stages" / "teacher" / "checkpoint")]) == 2
    assert main([*base, "--stage", "teacher", "kind=ctm"]) == 2
    assert main([*base, "--stage", "flow-map", "kind=sde"]) == 2
    assert not (tmp_path / "x.jsonl").exists()
