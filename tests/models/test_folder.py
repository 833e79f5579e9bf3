"""A model folder's weights must be its stage's: ELF* weights in an FMLM* folder (same tensor names and
shapes) are refused in one line, read from the stage safetensors metadata."""

import shutil

import pytest

from fmlm.models import load_model
from fmlm.models.folder import ModelInfo, save_model
from fmlm.nn import Denoiser, denoiser_config


def _folder(path, stage):
    config = denoiser_config("tiny", latent_dim=8, vocab_size=20, max_len=8, self_conditioning=True,
                             guidance_tokens=4, phase_tokens=4)
    info = ModelInfo(stage=stage, architecture=config, encoder="minilm", encoder_layer=-1, tokenizer="minilm",
                     whitening_mu=0.0, whitening_sigma=1.0)
    return save_model(Denoiser(config), path, info)


def test_weights_of_another_stage_are_refused(tmp_path):
    elf_star, fmlm_star = _folder(tmp_path / "elf-star", "fixed-point"), _folder(tmp_path / "fmlm-star", "flow-map")
    assert load_model(fmlm_star).info.stage == "flow-map"
    shutil.copy(elf_star / "model.safetensors", fmlm_star / "model.safetensors")
    with pytest.raises(ValueError) as err:
        load_model(fmlm_star)
    message = str(err.value)
    assert "\n" not in message and str(fmlm_star / "model.safetensors") in message
    assert "'fixed-point'" in message and "'flow-map'" in message
