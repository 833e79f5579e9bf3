"""Fixtures for the denoiser tests: tiny models and a 'trained-like' perturbation."""

from __future__ import annotations

import pytest
import torch

from fmlm.nn import Denoiser, denoiser_config

LATENT, VOCAB, MAX_LEN = 8, 40, 12


def build(**overrides) -> Denoiser:
    """A 'tiny' preset denoiser with small data sizes; overrides go to the config."""
    sizes = {"latent_dim": LATENT, "vocab_size": VOCAB, "max_len": MAX_LEN}
    sizes.update({k: overrides.pop(k) for k in list(overrides) if k in sizes})
    return Denoiser(denoiser_config("tiny", **sizes, **overrides))


def perturb(model: torch.nn.Module, scale: float = 0.1, seed: int = 1) -> torch.nn.Module:
    """Add Gaussian noise to every parameter (so zero-initialised heads are no longer zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model


@pytest.fixture
def model() -> Denoiser:
    return perturb(build()).eval()


@pytest.fixture
def batch() -> dict:
    b, n = 3, 7
    return {"z": torch.randn(b, n, LATENT), "t": torch.rand(b), "sc": torch.randn(b, n, LATENT)}


@pytest.fixture
def build_model():
    """The ``build`` factory (tests may not import conftest directly)."""
    return build


@pytest.fixture
def perturbed():
    """The ``perturb`` helper."""
    return perturb
