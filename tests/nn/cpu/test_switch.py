"""``FMLM_CPU_KERNELS``: read once, a bad value refused in one line, and ``off`` routes around every fast
path (spied on) while giving the same values."""

from __future__ import annotations

import pytest
import torch

from fmlm.nn.cpu import attention, fused_norm, head_argmax, switch
from fmlm.nn.cpu.attention import attend
from fmlm.nn.cpu.head_argmax import COL_TILE, default_screen
from fmlm.nn.cpu.screen_int8 import int_mm_is_exact
from tests.tolerance import FLOAT64_IDENTITY, assert_close_to_scale


@pytest.fixture
def fresh(monkeypatch):
    """The switch as a new process would read it: ``fresh(value)`` sets the variable (None: unset)."""
    def set_env(value):
        if value is None:
            monkeypatch.delenv(switch.ENV, raising=False)
        else:
            monkeypatch.setenv(switch.ENV, value)
        monkeypatch.setattr(switch, "_mode", None)
    return set_env


@pytest.mark.parametrize("value, mode", [(None, "auto"), ("", "auto"), ("auto", "auto"), ("off", "off"), ("on", "on")])
def test_the_variable_is_read_at_first_use(fresh, value, mode):
    fresh(value)
    assert switch.mode() == mode and switch.enabled() is (mode != "off")


@pytest.mark.parametrize("value", ["fast", "OFF", "0", " on"])
def test_a_bad_value_is_refused_in_one_line(fresh, value):
    fresh(value)
    with pytest.raises(ValueError, match=rf"^FMLM_CPU_KERNELS: expected one of auto, off, on, got {value!r}$") as info:
        switch.mode()
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="^FMLM_CPU_KERNELS: expected one of"):
        with switch.set_mode(value):
            pass


def test_set_mode_restores_the_mode(fresh):
    fresh("off")
    with switch.set_mode("on"):
        assert switch.mode() == "on"
    assert switch.mode() == "off"


class Spy:
    """Counts the calls of ``module.name`` (then calls it)."""

    def __init__(self, monkeypatch, module, name):
        self.calls = 0
        inner = getattr(module, name)

        def spy(*args, **kwargs):
            self.calls += 1
            return inner(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)


def _train_step(model, batch):
    """One forward and backward of the network; the gradients, by parameter name."""
    model.zero_grad()
    out = model(batch["z"], batch["t"], sc=batch["sc"])
    out.pow(2).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_off_routes_around_the_fused_norms_with_the_same_values(build_model, perturbed, batch, monkeypatch):
    model = perturbed(build_model()).double()  # float64: the two paths agree to its rounding
    batch = {"z": batch["z"].double(), "t": batch["t"], "sc": batch["sc"].double()}
    norm = Spy(monkeypatch, fused_norm._RMSNorm, "apply")
    rotary = Spy(monkeypatch, fused_norm._NormedRotary, "apply")
    with switch.set_mode("on"):
        fast = _train_step(model, batch)
    assert norm.calls > 0 and rotary.calls > 0
    before = norm.calls, rotary.calls
    with switch.set_mode("off"):
        plain = _train_step(model, batch)
    assert (norm.calls, rotary.calls) == before  # autograd through the formula instead
    assert_close_to_scale(plain[0], fast[0], FLOAT64_IDENTITY)
    for name, grad in fast[1].items():
        assert_close_to_scale(plain[1][name], grad, FLOAT64_IDENTITY, name)


def test_off_routes_short_bf16_attention_to_the_fused_kernel(monkeypatch):
    explicit = Spy(monkeypatch, attention, "explicit_attention")
    fused = Spy(monkeypatch, attention.F, "scaled_dot_product_attention")
    q, k, v = torch.randn(3, 1, 2, 6, 8, dtype=torch.bfloat16, requires_grad=True).unbind(0)
    with switch.set_mode("on"):
        attend(q, k, v)
    assert (explicit.calls, fused.calls) == (1, 0)
    with switch.set_mode("off"):
        attend(q, k, v)
    assert (explicit.calls, fused.calls) == (1, 1)


def test_off_routes_the_decoder_pass_around_tiles_and_screens(build_model, perturbed, batch, monkeypatch):
    model = perturbed(build_model(vocab_size=3000), scale=0.05).eval()
    z = batch["z"]
    whole = model(z, 1.0, decode=True).argmax(-1)
    tiles = []
    linear = head_argmax.linear_argmax
    monkeypatch.setattr(head_argmax, "linear_argmax", lambda *a, **kw: tiles.append(kw["cols"]) or linear(*a, **kw))
    screened = Spy(monkeypatch, head_argmax, "screened_argmax")
    with switch.set_mode("off"):
        assert default_screen("cpu") == "none"
        assert torch.equal(model.token_ids(z, 1.0), whole)
    assert tiles == [None] and screened.calls == 0  # whole logits per chunk, no screen
    with switch.set_mode("on"):
        assert torch.equal(model.token_ids(z, 1.0), whole)
        chosen = default_screen("cpu")
    if int_mm_is_exact():  # on: the int8 screen wherever its integer sums are exact, VNNI or not
        assert chosen == "int8" and screened.calls == 1
    else:
        assert chosen == "none" and tiles[-1] == COL_TILE
    with switch.set_mode("off"):
        assert torch.equal(model.token_ids(z, 1.0, screen="none", vocab_tile=500), whole)  # explicit: kept
    assert tiles[-1] == 500


@pytest.mark.parametrize("vnni", [True, False])
def test_auto_takes_the_screen_where_it_pays(monkeypatch, vnni):
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: vnni)
    with switch.set_mode("auto"):
        assert default_screen("cpu") == ("int8" if vnni and int_mm_is_exact() else "none")
        assert default_screen("cuda") == "none"
