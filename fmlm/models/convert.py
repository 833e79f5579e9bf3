"""Making model folders: from a reference checkpoint (``import``) or a training checkpoint (``export``).

``import_checkpoint``: a released Lightning checkpoint of the paper's reference code ->
``fmlm.models.reference.import_reference`` (safe read, key map, shape inference) -> a model folder with
the paper's sampler settings, the GPT-2 tokenizer (built offline) and a card naming the source file and
its sha256.

``export_checkpoint``: a stage checkpoint of this project (``RUN/stages/<stage>/checkpoint``, or the
stage folder holding it) -> a model folder with the EMA (or raw) weights, the data folder's encoder,
whitening and tokenizer, the stage's flow constants and this project's sampler settings.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fmlm.models.folder import ModelInfo, save_model
from fmlm.models.sampling import PAPER_SAMPLERS, PROJECT_SAMPLERS

REFERENCE_REPO = "github.com/Ugness/self-conditioned-fmlm"
REFERENCE_LICENCE = (f"MIT, as stated by the reference implementation ({REFERENCE_REPO}); the weights are the "
                     "authors' release (hub repository wonjKim/self-conditioned-fmlm): check its card for terms.")
PROJECT_LICENCE = "MIT (fmlm); the training text keeps its own licence (see the run's data folder)."
HASH_CHUNK = 1 << 20  # bytes read at a time while hashing a multi-GB checkpoint


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def import_checkpoint(path: str | Path, out: str | Path, *, config_path: str | Path | None = None,
                      weights: str = "ema", stage: str | None = None, cache_dir: str | Path | None = None,
                      overwrite: bool = False) -> Path:
    """Import a reference checkpoint into the model folder ``out``; returns ``out``."""
    from fmlm.data.gpt2 import offline_tokenizer
    from fmlm.math.flow import FlowConfig
    from fmlm.models.reference import import_reference
    from fmlm.nn.denoiser import Denoiser

    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and not overwrite:  # refuse before reading a multi-GB file
        raise ValueError(f"{out}: already holds files; choose another --out or pass --overwrite")
    ref = import_reference(path, config_path=config_path, weights=weights, stage=stage)
    settings = ref.settings
    tokenizer_name = str(settings.get("tokenizer_name") or settings["encoder_model_name"])
    tokenizer = offline_tokenizer(tokenizer_name, Path(cache_dir) if cache_dir else None)
    if tokenizer is not None and len(tokenizer) != ref.config.vocab_size:
        raise ValueError(f"{path}: decoder head has {ref.config.vocab_size} tokens, the {tokenizer_name} "
                         f"tokenizer {len(tokenizer)}")
    model = Denoiser(ref.config)
    model.load_state_dict(ref.state)
    layer = settings["feature_layer"]
    info = ModelInfo(
        stage=ref.stage,
        architecture=ref.config,
        encoder=str(settings["encoder_model_name"]),
        encoder_layer=-1 if layer == "last" else int(layer),
        tokenizer=tokenizer_name,
        whitening_mu=float(settings["latent_mean"]),
        whitening_sigma=float(settings["latent_std"]),
        flow=FlowConfig(lam=float(settings["denoiser_noise_scale"]), p_mean=float(settings["denoiser_p_mean"]),
                        p_std=float(settings["denoiser_p_std"]), t_eps=float(settings["t_eps"]),
                        w_min=float(settings["self_cond_cfg_min"]), w_max=float(settings["self_cond_cfg_max"])),
        samplers=PAPER_SAMPLERS[ref.stage],
        source={
            "origin": f"reference checkpoint ({REFERENCE_REPO})",
            "file": Path(path).name,
            "sha256": sha256_of(path),
            "weights": ref.weights,
            "reference_config": Path(config_path).name if config_path else "none (the paper's values)",
            "skipped_tensors": ref.skipped,
            "licence": REFERENCE_LICENCE,
        },
    )
    return save_model(model, out, info, tokenizer=tokenizer, overwrite=overwrite)


def _checkpoint_folder(path: Path) -> Path:
    return path / "checkpoint" if (path / "checkpoint" / "meta.json").is_file() else path


def export_checkpoint(path: str | Path, out: str | Path, *, weights: str = "ema", overwrite: bool = False) -> Path:
    """Export a finished stage checkpoint of this project as the model folder ``out``; returns ``out``."""
    from transformers import AutoTokenizer

    from fmlm.data.cache import TOKENIZER_DIR
    from fmlm.data.dataset import load_meta
    from fmlm.experiment.stages import stored_stage_config
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
