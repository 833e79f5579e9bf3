"""Phase bank placement: separate prefix tokens (the paper's) or added onto the time tokens."""

import dataclasses

import pytest
import torch

from fmlm.config import ConfigError
from fmlm.nn import Denoiser, denoiser_config, warm_start


def pair(placement):
    torch.manual_seed(0)
    teacher = Denoiser(denoiser_config("tiny", latent_dim=8, vocab_size=20, max_len=6))
    with torch.no_grad():  # move the weights off their initial values, as training would
        for p in teacher.parameters():
            p.add_(0.1 * torch.randn_like(p))
    student = Denoiser(dataclasses.replace(teacher.config, phase_tokens=4, phase_placement=placement))
    warm_start(student, teacher.state_dict())
    return teacher, student


def inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 6, 8, generator=g), torch.rand(3, generator=g), torch.randn(3, 6, 8, generator=g)


def test_phase_added_to_time_tokens_makes_the_warm_start_exact():
    teacher, student = pair("time")
    z, t, sc = inputs()
    assert student.prefix_len == teacher.prefix_len
    for tau in (None, torch.full((3,), 2.5)):
        torch.testing.assert_close(student(z, t, sc=sc, tau=tau), teacher(z, t, sc=sc), rtol=0, atol=0)
        torch.testing.assert_close(student(z, t, decode=True, tau=tau), teacher(z, t, decode=True), rtol=0, atol=0)


def test_separate_phase_tokens_move_a_warm_started_output():
    teacher, student = pair("tokens")
    z, t, sc = inputs()
    assert student.prefix_len == teacher.prefix_len + 4
    with torch.no_grad():
        assert float((student(z, t, sc=sc) - teacher(z, t, sc=sc)).abs().max()) > 1e-3


def test_trained_phase_bank_conditions_on_tau_in_both_placements():
    for placement in ("tokens", "time"):
        _, student = pair(placement)
        with torch.no_grad():
            for p in student.phase_bank.parameters():
                p.add_(0.1 * torch.randn_like(p))
            z, t, sc = inputs()
            a = student(z, t, sc=sc, tau=torch.full((3,), 0.002))
            b = student(z, t, sc=sc, tau=torch.full((3,), 3.0))
        assert float((a - b).abs().max()) > 1e-4, placement


def test_time_placement_needs_as_many_phase_as_time_tokens():
    with pytest.raises(ConfigError, match="phase_tokens"):
        denoiser_config("tiny", latent_dim=8, vocab_size=20, max_len=6, phase_tokens=2, phase_placement="time")
