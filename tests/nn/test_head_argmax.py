"""The decoder head's argmax, tiled and through the bf16 screen: the ids of the whole fp32 logits' argmax,
ties and NaN included."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fmlm.nn import head_argmax
from fmlm.nn.head_argmax import ScreenedHead, bf16_screen_pays, linear_argmax, screened_argmax


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


# --- the bf16 screen ---


@pytest.mark.parametrize("rows, cols, with_bias", [(256, 2048, True), (5, 97, False), (1, None, True)])
def test_the_screen_returns_the_fp32_ids(rows, cols, with_bias):
    gen = torch.Generator().manual_seed(cols or 1)
    x, weight = torch.randn(300, 32, generator=gen), torch.randn(5000, 32, generator=gen) * 0.1
    bias = torch.randn(5000, generator=gen) * 0.1 if with_bias else None
    expected = F.linear(x, weight, bias).argmax(-1)
    assert torch.equal(screened_argmax(x, weight, bias, rows=rows, cols=cols), expected)


def test_the_screen_separates_logits_bf16_cannot():
    """Ids whose logits differ by 1e-5 relative (bf16 resolves 4e-3) are told apart by the fp32 rescoring."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(64, 16, generator=gen)
    weight = torch.randn(400, 16, generator=gen) * 0.01
    weight[100], weight[300] = x[0], x[0] * (1 + 1e-5)  # near-equal winners for row 0 (and its like)
    weight[200] = x[1] * (1 - 1e-5)
    weight[50] = x[1]
    expected = F.linear(x, weight).argmax(-1)
    assert expected[0].item() == 300 and expected[1].item() == 50
    assert torch.equal(screened_argmax(x, weight, cols=128), expected)


def test_degenerate_rows_take_the_fp32_path():
    weight = torch.randn(3000, 8)
    x = torch.cat([torch.zeros(1, 8), torch.full((1, 8), float("nan")), torch.randn(2, 8)])  # all-equal, NaN rows
    assert torch.equal(screened_argmax(x, weight), F.linear(x, weight).argmax(-1))
    with pytest.raises(ValueError, match="expected float32 x and weight, got torch.bfloat16"):
        screened_argmax(x.bfloat16(), weight)


def test_a_head_built_once_is_fresh_until_its_weights_change():
    weight, bias = torch.randn(10, 4), torch.randn(10)
    head = ScreenedHead.of(weight, bias, block=4)
    assert head.fresh(weight, bias, block=4) and not head.fresh(weight, bias) and head.weight.dtype == torch.bfloat16
    assert head.weight.shape == (10, 32) and torch.equal(head.weight[:, 4], bias.bfloat16())  # [w, b, 0...]
    norms = weight.norm(dim=1)
    assert torch.allclose(head.weight_norms, torch.stack([norms[:4].max(), norms[4:8].max(), norms[8:].max()]))
    assert torch.allclose(head.bias_norms, torch.stack([bias[:4].abs().max(), bias[4:8].abs().max(), bias[8:].abs().max()]))
    bias.add_(1.0)
    assert not head.fresh(weight, bias, block=4)
    with pytest.raises(ValueError, match="head was built for blocks of 4 ids, not 256"):
        screened_argmax(torch.randn(2, 4), weight, bias, head=head)


@pytest.mark.parametrize("amx, avx512_bf16, pays", [(True, False, True), (False, True, True), (False, False, False)])
def test_the_screen_is_chosen_on_cpus_with_bf16_instructions(monkeypatch, amx, avx512_bf16, pays):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert head_argmax.BF16_CPU_PROBES == ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    assert bf16_screen_pays("cpu") is pays
    assert bf16_screen_pays("cuda") is False  # a GPU's bf16 GEMM may reduce in bf16
