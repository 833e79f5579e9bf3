"""A finished stage of a run as a model folder (``python -m fmlm export RUN/stages/<stage>``).

The stage checkpoint (``RUN/stages/<stage>/checkpoint``, or the stage folder holding it) gives the EMA
(or raw) weights and the flow constants it was trained with; its data folder gives the encoder, the
whitening and the tokenizer; the stored sampler settings are this project's evaluation plan
(``fmlm.models.sampling.PROJECT_SAMPLERS``).
"""

from __future__ import annotations

from pathlib import Path

from fmlm.experiment.stages import stored_stage_config
from fmlm.models.folder import ModelInfo, save_model
from fmlm.models.sampling import PROJECT_SAMPLERS

PROJECT_LICENCE = "MIT (fmlm); the training text keeps its own licence (see the run's data folder)."


def _checkpoint_folder(path: Path) -> Path:
    return path / "checkpoint" if (path / "checkpoint" / "meta.json").is_file() else path


def export_checkpoint(path: str | Path, out: str | Path, *, weights: str = "ema", overwrite: bool = False) -> Path:
    """Export a finished stage checkpoint of this project as the model folder ``out``; returns ``out``."""
    from transformers import AutoTokenizer

    from fmlm.data.cache import TOKENIZER_DIR
    from fmlm.data.dataset import load_meta
    from fmlm.train import checkpoint as ckpt

    if weights not in ("ema", "raw"):
        raise ValueError(f"weights: {weights!r} is not one of ['ema', 'raw']")
    folder = _checkpoint_folder(Path(path))
    meta = ckpt.read_meta(folder)
    if not meta.complete:
        raise ValueError(f"{folder}: stage {meta.stage!r} is unfinished (step {meta.step} of {meta.total_steps})")
    data_folder = Path(meta.data["folder"])
    if not (data_folder / "meta.json").is_file():
        raise ValueError(f"{folder}: its data folder {data_folder} is gone (needed for the encoder and tokenizer)")
    data = load_meta(data_folder)
    model = ckpt.load_denoiser(folder, "ema" if weights == "ema" else "model")
    info = ModelInfo(
        stage=meta.stage,
        architecture=model.config,
        encoder=str(data["config"]["encoder"]),
        encoder_layer=int(data["config"]["layer"]),
        tokenizer=str(data["config"]["tokenizer"] or data["config"]["encoder"]),
        whitening_mu=float(data["mu"]),
        whitening_sigma=float(data["sigma"]),
        flow=stored_stage_config(folder).flow,
        samplers=PROJECT_SAMPLERS[meta.stage],
        source={"origin": "fmlm training checkpoint", "checkpoint": str(folder), "step": meta.step,
                "weights": weights, "data_rows": meta.data.get("rows"), "licence": PROJECT_LICENCE},
    )
    tokenizer = AutoTokenizer.from_pretrained(str(data_folder / TOKENIZER_DIR))
    return save_model(model, out, info, tokenizer=tokenizer, overwrite=overwrite)
