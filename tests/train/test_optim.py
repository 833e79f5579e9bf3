import pytest
import torch

from fmlm.config import ConfigError
from fmlm.nn import Denoiser, denoiser_config
from fmlm.train.optim import OptimConfig, build_optimizers, lr_at, split_parameters


def test_lr_warmup_then_constant():
    assert lr_at(0, 1.0, 4) == pytest.approx(0.25)
    assert lr_at(3, 1.0, 4) == pytest.approx(1.0)
    assert lr_at(100, 1.0, 4) == 1.0
    assert lr_at(0, 0.5, 0) == 0.5


def test_lr_decay_tail_is_linear_to_zero():
    # 10 steps, no warm-up, decay over the last 4: steps 6..9 at 4/4, 3/4, 2/4, 1/4 of the peak.
    lrs = [lr_at(s, 2.0, 0, 10, 4) for s in range(10)]
    assert lrs[:6] == [2.0] * 6
    assert lrs[6:] == pytest.approx([2.0, 1.5, 1.0, 0.5])
    # warm-up and decay overlap: the smaller factor wins
    assert lr_at(0, 1.0, 4, 4, 4) == pytest.approx(0.25)
    assert lr_at(3, 1.0, 4, 4, 4) == pytest.approx(0.25)


def test_decay_fraction_is_checked():
    with pytest.raises(ConfigError, match="optim.decay_fraction"):
        OptimConfig(decay_fraction=1.5)


def test_peak_lr_scales_with_batch():
    assert OptimConfig().peak_lr(512) == pytest.approx(0.002)
    assert OptimConfig(lr=0.01).peak_lr(512) == 0.01


def test_muon_gets_only_hidden_matrices():
    model = Denoiser(denoiser_config("tiny", latent_dim=8, vocab_size=20, max_len=8))
    hidden, rest = split_parameters(model)
    names = {id(p): n for n, p in model.named_parameters()}
    assert hidden and all(names[id(p)].startswith("blocks.") and p.ndim == 2 for p in hidden)
    assert all(not (names[id(p)].startswith("blocks.") and p.ndim == 2) for p in rest)
    muon, adamw = build_optimizers(model, OptimConfig())
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)


def test_bad_optim_config_names_key():
    with pytest.raises(ConfigError, match="optim.ema_decay"):
        OptimConfig(ema_decay=1.5)
