"""Making a model folder from a released reference checkpoint (``python -m fmlm import``).

``import_checkpoint``: a released Lightning checkpoint of the paper's reference code ->
``fmlm.models.reference.import_reference`` (safe read, key map, shape inference) -> a model folder with
the paper's sampler settings, the GPT-2 tokenizer (built offline) and a card naming the source file and
its sha256.

(``fmlm.experiment.export`` makes one from a stage checkpoint of this project.)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fmlm.models.folder import ModelInfo, save_model
from fmlm.models.sampling import PAPER_SAMPLERS

REFERENCE_REPO = "github.com/Ugness/self-conditioned-fmlm"
REFERENCE_LICENCE = (f"MIT, as stated by the reference implementation ({REFERENCE_REPO}); the weights are the "
                     "authors' release (hub repository wonjKim/self-conditioned-fmlm): check its card for terms.")
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
