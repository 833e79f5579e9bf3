"""Training precision: bf16 autocast on CPUs with bf16 matrix units in the embedded preset, fp32 elsewhere."""

import pytest
import torch

from fmlm.experiment import presets
from fmlm.train import precision


@pytest.mark.parametrize("amx, avx512_bf16, expected", [(True, False, "bf16"), (False, True, "bf16"),
                                                         (False, False, "fp32")])
def test_the_embedded_preset_trains_in_bf16_where_the_cpu_has_bf16_units(monkeypatch, amx, avx512_bf16, expected):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert precision.cpu_training_precision() == expected
    cfg = presets.embedded()
    stages = (cfg.train_teacher, cfg.train_fixed_point, cfg.train_flow_map)
    assert {s.precision for s in stages} == {expected}
    factor = presets.BF16_STEP_FACTOR if expected == "bf16" else 1
    assert [s.max_steps for s in stages] == [factor * n for n in presets.EMBEDDED_STEPS]
    assert {s.precision for s in (presets.quick().train_teacher, presets.quick().train_flow_map)} == {"fp32"}


def test_autocast_follows_precision_and_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [precision.uses_bf16(cpu, p) for p in ("fp32", "bf16", "auto")] == [False, True, False]
    assert [precision.uses_bf16(cuda, p) for p in ("fp32", "bf16", "auto")] == [False, True, True]
    with precision.autocast(cpu, "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with precision.autocast(cpu, "fp32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
