"""The decoder head's argmax, tiled and through the int8 screen: the ids of the whole fp32 logits' argmax,
ties and NaN included."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fmlm.nn.cpu import screen_int8
from fmlm.nn.cpu.head_argmax import linear_argmax, screen_for, screen_of, screened_argmax
from fmlm.nn.cpu.head_screen import block_max
from fmlm.nn.cpu.screen_int8 import Int8Screen, int8_screen_pays, int_mm_is_exact

SCREEN_NAMES = ["int8"]  # the screens of fmlm.nn.cpu.head_argmax.SCREENS


@pytest.mark.parametrize("rows, cols", [(1, 1), (7, 5), (256, 2048), (3, None), (64, 10_000)])
def test_the_ids_are_those_of_the_whole_logits(rows, cols):
    gen = torch.Generator().manual_seed(rows)
    x, weight, bias = torch.randn(50, 16, generator=gen), torch.randn(997, 16, generator=gen), torch.randn(997, generator=gen)
    expected = F.linear(x, weight, bias).argmax(-1)
    assert torch.equal(linear_argmax(x, weight, bias, rows=rows, cols=cols), expected)
    assert torch.equal(linear_argmax(x, weight, None, rows=rows, cols=cols), F.linear(x, weight).argmax(-1))


def test_a_tie_goes_to_the_lowest_id_across_tiles():
    weight = torch.randn(40, 8, generator=torch.Generator().manual_seed(0)) * 0.01
    weight[33] = weight[5] = weight[21] = torch.ones(8)  # three equal rows in three tiles of 10
    x = torch.ones(1, 8)  # the equal rows score highest
    assert F.linear(x, weight).argmax(-1).item() == 5
    assert linear_argmax(x, weight, rows=1, cols=10).item() == 5


def test_a_nan_logit_wins_as_in_torch_argmax():
    weight = torch.randn(30, 4)
    weight[17, 0] = float("nan")
    x = torch.cat([torch.randn(3, 4), torch.full((1, 4), float("nan"))])
    expected = F.linear(x, weight).argmax(-1)
    assert expected.tolist()[:3] == [17, 17, 17]
    assert torch.equal(linear_argmax(x, weight, rows=2, cols=4), expected)


def test_bad_tiles_and_shapes_are_refused():
    x, weight = torch.randn(2, 3), torch.randn(5, 3)
    for kwargs, match in [({"rows": 0}, "rows: expected an integer >= 1"), ({"cols": 1.5}, "cols: expected"),
                          ({"rows": True}, "rows: expected")]:
        with pytest.raises(ValueError, match=match):
            linear_argmax(x, weight, **kwargs)
    with pytest.raises(ValueError, match=r"expected x \(N, d\) and weight \(V, d\), got \(2, 3\) and \(5, 4\)"):
        linear_argmax(x, torch.randn(5, 4))


# --- the screens ---


@pytest.fixture(autouse=True)
def _exact_integer_products(request):
    if "screen" in request.fixturenames and request.getfixturevalue("screen") == "int8" and not int_mm_is_exact():
        pytest.skip("torch._int_mm is not exact on this machine: the int8 screen is not used here")


@pytest.mark.parametrize("screen", SCREEN_NAMES)
@pytest.mark.parametrize("rows, cols, with_bias", [(256, 2048, True), (5, 97, False), (1, None, True)])
def test_the_screen_returns_the_fp32_ids(screen, rows, cols, with_bias):
    gen = torch.Generator().manual_seed(cols or 1)
    x, weight = torch.randn(300, 32, generator=gen), torch.randn(5000, 32, generator=gen) * 0.1
    bias = torch.randn(5000, generator=gen) * 0.1 if with_bias else None
    expected = F.linear(x, weight, bias).argmax(-1)
    assert torch.equal(screened_argmax(x, weight, bias, screen=screen, rows=rows, cols=cols), expected)


def _peaked_head(gen: torch.Generator, tokens: int = 200, vocab: int = 6000, d: int = 48):
    """Features that each point at one vocabulary row, with outlier channels and a bias, as a trained
    head's do: the argmax is clear, so a working screen rules out most blocks."""
    weight = torch.randn(vocab, d, generator=gen) * 0.05
    targets = torch.randint(0, vocab, (tokens,), generator=gen)
    x = weight[targets] * 40 + torch.randn(tokens, d, generator=gen) * 0.3
    x[:, :3] *= 8  # outlier channels, as the decoder head's gelu features have
    return x, weight, torch.randn(vocab, generator=gen) * 0.02


@pytest.mark.parametrize("screen", SCREEN_NAMES)
def test_the_bounds_bracket_every_blocks_largest_real_logit(screen):
    gen = torch.Generator().manual_seed(11)
    x, weight, bias = _peaked_head(gen)
    head = screen_of(screen, weight, bias, block=64)
    upper, lower = head.block_bounds(x, rows=37, cols=640)
    real = block_max(x.double() @ weight.double().t() + bias.double(), 64)  # 6000 ids: 94 blocks, the last short
    assert upper.shape == lower.shape == (200, 94)
    assert bool((lower <= real).all()) and bool((real <= upper).all())
    scored = (upper >= lower.amax(1, keepdim=True)).double().sum(1).mean().item()
    assert scored < 3, scored  # of 94 blocks: the bounds are tight enough to rule out the rest
    assert torch.equal(screened_argmax(x, weight, bias, head=head, block=64), F.linear(x, weight, bias).argmax(-1))


@pytest.mark.parametrize("screen", SCREEN_NAMES)
def test_the_screen_separates_logits_it_cannot_resolve(screen):
    """Ids whose logits differ by 1e-5 relative (int8 resolves 1e-2) are told apart by the fp32 rescoring."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(64, 16, generator=gen)
    weight = torch.randn(400, 16, generator=gen) * 0.01
    weight[100], weight[300] = x[0], x[0] * (1 + 1e-5)  # near-equal winners for row 0 (and its like)
    weight[200] = x[1] * (1 - 1e-5)
    weight[50] = x[1]
    expected = F.linear(x, weight).argmax(-1)
    assert expected[0].item() == 300 and expected[1].item() == 50
    assert torch.equal(screened_argmax(x, weight, screen=screen, cols=128), expected)


@pytest.mark.parametrize("screen", SCREEN_NAMES)
def test_a_tie_goes_to_the_lowest_id_through_the_screen(screen):
    weight = torch.randn(1000, 8, generator=torch.Generator().manual_seed(0)) * 0.01
    weight[900] = weight[300] = weight[600] = torch.ones(8)  # three equal rows in three blocks
    x = torch.ones(2, 8)
    assert torch.equal(screened_argmax(x, weight, screen=screen, block=100), torch.tensor([300, 300]))


@pytest.mark.parametrize("screen", SCREEN_NAMES)
def test_degenerate_rows_take_the_fp32_path(screen):
    weight = torch.randn(3000, 8)
    rows = [torch.zeros(1, 8), torch.full((1, 8), float("nan")), torch.full((1, 8), float("inf")),
            torch.full((1, 8), 1e37), torch.randn(2, 8)]  # all-equal, NaN, inf, logits beyond fp32
    x = torch.cat(rows)
    assert torch.equal(screened_argmax(x, weight, screen=screen), F.linear(x, weight).argmax(-1))
    assert screened_argmax(x[:0], weight, screen=screen).shape == (0,)
    with pytest.raises(ValueError, match="expected float32 x and weight, got torch.bfloat16"):
        screened_argmax(x.bfloat16(), weight, screen=screen)


@pytest.mark.parametrize("screen", SCREEN_NAMES)
def test_a_head_with_a_non_finite_weight_takes_the_fp32_path(screen):
    weight, x = torch.randn(700, 8), torch.randn(9, 8)
    weight[650, 3] = float("inf")
    head = screen_of(screen, weight, block=64)
    assert not head.usable
    assert torch.equal(screened_argmax(x, weight, head=head, block=64), F.linear(x, weight).argmax(-1))


def test_a_large_bias_spread_only_widens_the_int8_bounds():
    """The int8 bounds take each block's bias range; with biases 100x the logits' scale the ids still match."""
    if not int_mm_is_exact():
        pytest.skip("torch._int_mm is not exact on this machine")
    gen = torch.Generator().manual_seed(5)
    x, weight = torch.randn(100, 24, generator=gen), torch.randn(4000, 24, generator=gen) * 0.1
    bias = torch.randn(4000, generator=gen) * 50
    assert torch.equal(screened_argmax(x, weight, bias, screen="int8"), F.linear(x, weight, bias).argmax(-1))


def test_the_int8_head_keeps_per_block_scales_and_remainders():
    weight = torch.randn(10, 4, generator=torch.Generator().manual_seed(2))
    bias = torch.tensor([0.5, -1.0, 2.0, 0.0, 3.0, -2.0, 1.0, 1.0, -4.0, 0.25])
    head = Int8Screen.of(weight, bias, block=4)
    assert head.weight.dtype == torch.int8 and head.weight.shape == (10, 4) and head.usable
    assert torch.allclose(head.scales, torch.stack([weight[:4].abs().max(), weight[4:8].abs().max(),
                                                    weight[8:].abs().max()]).double() / 127)
    assert head.weight[:4].abs().max() == 127  # the block's largest weight maps to +-127
    remainders = weight.double() - head.scales.repeat_interleave(4)[:10, None] * head.weight.double()
    assert torch.allclose(head.error_norms, torch.stack([remainders[:4].norm(dim=1).max(),
                                                         remainders[4:8].norm(dim=1).max(), remainders[8:].norm(dim=1).max()]))
    assert head.bias_max.tolist() == [2.0, 3.0, 0.25] and head.bias_min.tolist() == [-1.0, -2.0, -4.0]


def test_a_head_built_once_is_fresh_until_its_weights_change():
    weight, bias = torch.randn(10, 4), torch.randn(10)
    head = Int8Screen.of(weight, bias, block=4)
    assert head.fresh(weight, bias, block=4) and not head.fresh(weight, bias) and head.weight.dtype == torch.int8
    norms = weight.double().norm(dim=1)
    assert torch.allclose(head.weight_norms, torch.stack([norms[:4].max(), norms[4:8].max(), norms[8:].max()]))
    assert torch.allclose(head.bias_norms, torch.stack([bias[:4].abs().max(), bias[4:8].abs().max(),
                                                        bias[8:].abs().max()]).double())
    bias.add_(1.0)
    assert not head.fresh(weight, bias, block=4)
    with pytest.raises(ValueError, match="head was built for blocks of 4 ids, not 256"):
        screened_argmax(torch.randn(2, 4), weight, bias, head=head)
    with pytest.raises(ValueError, match=r"screen: expected one of \['int8'\], got 'bf16'"):
        screened_argmax(torch.randn(2, 4), weight, bias, screen="bf16")  # removed: no CPU reached it


@pytest.mark.parametrize("vnni, exact, chosen", [(True, True, "int8"), (True, False, "none"), (False, True, "none")])
def test_the_screen_for_a_cpu(monkeypatch, vnni, exact, chosen):
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: vnni)
    monkeypatch.setattr(screen_int8, "int_mm_is_exact", lambda: exact)
    assert screen_for("cpu") == chosen
    assert screen_for("cuda") == "none" and int8_screen_pays("cuda") is False


def test_a_saturating_integer_kernel_is_caught(monkeypatch):
    """The probe finds a kernel that, as x86 int8 kernels without VNNI do, shifts one operand to unsigned
    (a + 128), sums pairs of products in saturating int16 (``vpmaddubsw``) and subtracts 128 sum(b); the
    int8 screen is then refused by name."""
    def saturating(a, b):
        pairs = (a.long() + 128)[:, None, :] * b.long().t()[None, :, :]  # (n, m, k)
        pairs = torch.nn.functional.pad(pairs, (0, pairs.shape[-1] % 2)).unflatten(-1, (-1, 2)).sum(-1)
        return (pairs.clamp(-(2**15), 2**15 - 1).sum(-1) - 128 * b.long().sum(0)).int()

    a, b = torch.randint(-3, 4, (5, 6), dtype=torch.int8), torch.randint(-3, 4, (6, 7), dtype=torch.int8)
    assert torch.equal(saturating(a, b).long(), a.long() @ b.long())  # the fake is exact on small values

    monkeypatch.setattr(torch, "_int_mm", saturating)
    int_mm_is_exact.cache_clear()
    try:
        assert not int_mm_is_exact()
        with pytest.raises(ValueError, match="screen 'int8': torch._int_mm does not return exact int32 sums"):
            screen_of("int8", torch.randn(10, 4))
    finally:
        int_mm_is_exact.cache_clear()


def test_each_term_of_the_int8_bound_is_attained():
    """Inputs whose screening error equals one term of the bound: x's remainder against a weight row stored
    exactly (row 0: x . w = 0.3001 where the integers give 38/127), and a weight remainder against features
    stored exactly (row 1). Without either term the bounds would miss the real logit."""
    if not int_mm_is_exact():
        pytest.skip("torch._int_mm is not exact on this machine")
    x = torch.tensor([[1.0, 0.3001], [1.0, 0.0]])  # row 1 is exactly (127, 0) / 127
    weight = torch.tensor([[0.0, 1.0], [0.4001, 1.0]])  # row 0 exactly (0, 127) / 127; row 1 not, in its block
    head = screen_of("int8", weight, block=1)
    upper, lower = head.block_bounds(x, rows=2, cols=None)
    real = x.double() @ weight.double().t()
    assert bool((lower <= real).all()) and bool((real <= upper).all())
    for r, v in [(0, 0), (1, 1)]:  # the error and the half-width agree to the slack
        screened = (upper[r, v] + lower[r, v]) / 2
        assert abs(abs(real[r, v] - screened) - (upper[r, v] - lower[r, v]) / 2) < 1e-3 * abs(real[r, v] - screened)
