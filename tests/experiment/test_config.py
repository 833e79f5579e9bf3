"""Config parsing refuses bad values with a one-line error that names the key the user wrote."""

from dataclasses import dataclass, field

import pytest

from fmlm.config import ConfigError, apply_overrides, from_dict, require
from fmlm.experiment import preset


@dataclass(frozen=True)
class Inner:
    steps: int = 1
    rate: float = 0.5

    def __post_init__(self) -> None:
        require(self.steps >= 0, "inner.steps", "must be >= 0")  # the section checks itself by its own name


@dataclass(frozen=True)
class Outer:
    first: Inner = field(default_factory=Inner)
    second: Inner = field(default_factory=Inner)


def test_a_nested_check_names_the_section_path():
    with pytest.raises(ConfigError, match=r"^second\.steps: must be >= 0$"):
        from_dict(Outer, {"second": {"steps": -1}})
    with pytest.raises(ConfigError, match=r"^inner\.steps: must be >= 0$"):  # built alone: its own name
        from_dict(Inner, {"steps": -1})


@pytest.mark.parametrize("section", ["train_teacher", "train_fixed_point", "train_flow_map"])
@pytest.mark.parametrize("key,value", [("max_steps", "-5"), ("seed", "-1"), ("optim.grad_clip", "0")])
def test_train_section_checks_name_the_section(section, key, value):
    with pytest.raises(ConfigError) as err:
        apply_overrides(preset("quick"), [f"{section}.{key}={value}"])
    assert str(err.value).startswith(f"{section}.{key}: ")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("override", [
    "train_teacher.epochs=Infinity", "train_teacher.epochs=-Infinity", "train_fixed_point.epochs=NaN",
    "train_teacher.optim.base_lr=Infinity", "train_teacher.optim.lr=NaN", "train_flow_map.optim.lr=1e999",
    "train_teacher.optim.warmup_epochs=NaN", "evaluation.teacher_w=Infinity", "evaluation.ctm_gamma=[1.0,NaN,1.0]",
    f"train_teacher.optim.base_lr={10 ** 400}",
])
def test_non_finite_numbers_are_refused(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=r"expected a finite number") as err:
        apply_overrides(preset("quick"), [override, "train_teacher.max_steps=0"])
    assert str(err.value).startswith(key.replace("ctm_gamma", "ctm_gamma[1]") + ": ")


def test_non_finite_numbers_are_refused_from_a_mapping_too():
    with pytest.raises(ConfigError, match=r"^rate: expected a finite number, got 'inf'$"):
        from_dict(Inner, {"rate": "inf"})
    assert from_dict(Inner, {"rate": "1e-3"}).rate == 1e-3


def test_sweeps_use_sweep_samples_and_headlines_n_samples():
    from fmlm.experiment.config import EvalConfig

    e = EvalConfig(n_samples=128, sweep_samples=64)
    assert e.samples_for(None) == 128
    assert [e.samples_for(s) for s in ("w", "gamma", "sc", "ode", "decode")] == [64] * 5
    assert EvalConfig(n_samples=128).samples_for("sc") == 128  # 0 = n_samples
