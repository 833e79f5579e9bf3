"""Checkpoints: weights in safetensors, configuration and progress in JSON,
optimiser state as plain tensors.

A checkpoint folder holds::

    model.safetensors   live weights
    ema.safetensors     EMA weights (what samplers and later stages use)
    denoiser.json       the network's DenoiserConfig
    meta.json           stage name, step, total steps, completion flag, stage config
    optim.pt            optimiser state dicts (loaded with weights_only=True)
    log_window.json     the metrics averaged since the last logged step (optional; see save_checkpoint)

Folders are written next to their final place and renamed into it, so an
interrupted save never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import pickle
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fmlm.config import ConfigError, from_dict, to_dict
from fmlm.files import PICKLE_PROTOCOL_WARNING, describe_refused_pickle, first_line, read_json_dict
from fmlm.nn.config import DenoiserConfig
from fmlm.nn.denoiser import Denoiser


@dataclass(frozen=True)
class CheckpointMeta:
    """What a checkpoint is: which stage wrote it, how far it got, and with what settings."""

    stage: str
    step: int
    total_steps: int
    complete: bool
    stage_config: dict[str, Any]
    data: dict[str, Any]


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def save_checkpoint(
    folder: str | Path,
    model: nn.Module,
    ema: nn.Module,
    optimizers: list[torch.optim.Optimizer],
    meta: CheckpointMeta,
    log_window: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically to ``folder`` (replacing an older one there).

    ``log_window`` (any JSON object) is the training loop's partial metrics window, stored as
    ``log_window.json`` so a resumed run logs what the uninterrupted one would."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        save_file(_state(model), tmp / "model.safetensors")
        save_file(_state(ema), tmp / "ema.safetensors")
        (tmp / "denoiser.json").write_text(json.dumps(to_dict(model.config), indent=2, sort_keys=True))
        (tmp / "meta.json").write_text(json.dumps(to_dict(meta), indent=2, sort_keys=True))
        torch.save({"optimizers": [opt.state_dict() for opt in optimizers]}, tmp / "optim.pt")
        if log_window is not None:
            (tmp / LOG_WINDOW_FILE).write_text(json.dumps(log_window))
    except BaseException as err:  # a full disk, a read-only folder, a signal: the partial copy goes
        full = _disk_full(folder.parent)  # looked at before the partial copy frees its space
        shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(err, Exception):
            raise
        cause = err.strerror if isinstance(err, OSError) and err.strerror else first_line(err)
        if full and "space" not in cause:  # torch.save says "unexpected pos ..." on a full disk
            cause = f"no space left on the device: {cause}"
        raise OSError(f"cannot save the checkpoint in {folder.parent} ({cause}); the previous checkpoint "
                      "is kept and the partial one removed") from None
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def _disk_full(folder: Path, margin: int = 1 << 20) -> bool:
    """True when the file system holding ``folder`` has less than ``margin`` bytes free."""
    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False


def recover_checkpoint(folder: str | Path) -> None:
    """Finish a save that was interrupted between its two renames, if one was.

    ``save_checkpoint`` writes ``<folder>.tmp`` completely, renames ``folder`` to ``<folder>.old``, then
    ``<folder>.tmp`` to ``folder``. So when ``folder`` is missing but ``<folder>.old`` exists, the save
    was cut between the renames and ``<folder>.tmp`` (if present) is the complete newer checkpoint;
    without it the older one is put back. A lone ``<folder>.tmp`` is a save cut while writing: ignored.
    """
    folder = Path(folder)
    source = newest_checkpoint(folder)
    if source is None or source == folder:
        return
    source.rename(folder)
    shutil.rmtree(folder.with_name(folder.name + ".old"), ignore_errors=True)


def newest_checkpoint(folder: str | Path) -> Path | None:
    """Where the newest complete checkpoint of ``folder`` is, without moving anything: ``folder`` itself,
    or (a save cut between its renames) ``<folder>.tmp`` / ``<folder>.old``; None when there is none."""
    folder = Path(folder)
    tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    if folder.exists():
        return folder
    if not old.is_dir():
        return None
    return tmp if tmp.is_dir() else old


LOG_WINDOW_FILE = "log_window.json"


def read_meta(folder: str | Path) -> CheckpointMeta:
    """The checkpoint's ``meta.json``, checked: a one-line ValueError naming the file if the folder is
    not a checkpoint, the file is not a JSON object of ``CheckpointMeta`` fields, the stage is empty,
    or the step is not within 0..total_steps."""
    path = Path(folder) / "meta.json"
    if not path.is_file():
        raise ValueError(f"{folder} is not a checkpoint (no meta.json)")
    data = read_json_dict(path)
    for key, kind, name in (("complete", bool, "true or false"), ("step", int, "an integer"),
                            ("total_steps", int, "an integer"), ("stage", str, "a string")):
        value = data.get(key)  # JSON types exactly: "no" is not false, true is not 1
        if key in data and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise ValueError(f"{path}: {key}: expected {name}, got {value!r}")
    try:
        meta = from_dict(CheckpointMeta, data)
    except ConfigError as err:
        raise ValueError(f"{path}: {err}".splitlines()[0]) from None
    if not meta.stage:
        raise ValueError(f"{path}: the stage name is empty")
    if not 0 <= meta.step <= meta.total_steps:
        raise ValueError(f"{path}: step {meta.step} is outside 0..{meta.total_steps} (its total_steps)")
    return meta


def read_log_window(folder: str | Path) -> dict[str, Any]:
    """The partial metrics window saved with the checkpoint ({} for a checkpoint without one); a
    one-line ValueError naming the file if it is not a JSON object."""
    path = Path(folder) / LOG_WINDOW_FILE
    return read_json_dict(path) if path.is_file() else {}


def read_denoiser_config(folder: str | Path) -> DenoiserConfig:
    """The network configuration stored with a checkpoint."""
    path = Path(folder) / "denoiser.json"
    if not path.is_file():
        raise ValueError(f"{folder} is not a checkpoint (no denoiser.json)")
    try:
        return from_dict(DenoiserConfig, read_json_dict(path))
    except ConfigError as err:
        raise ValueError(f"{path}: {err}") from None


def load_weights(module: nn.Module, folder: str | Path, which: str = "ema") -> None:
    """Load ``which`` ('ema' or 'model') weights into ``module``; any mismatch is a one-line ValueError."""
    path = Path(folder) / f"{which}.safetensors"
    if not path.is_file():
        raise ValueError(f"{folder} has no {which}.safetensors")
    state = read_safetensors(path)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {folder} does not fit this network: "
            f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
        )
    for name, tensor in state.items():
        if own[name].shape != tensor.shape:
            raise ValueError(
                f"checkpoint {folder} does not fit this network: {name} has shape "
                f"{tuple(tensor.shape)} there and {tuple(own[name].shape)} here"
            )
    module.load_state_dict(state)


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; a truncated or corrupt file is a one-line ValueError naming it."""
    from safetensors import SafetensorError

    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({first_line(err)}); the save was cut "
                         "or the file is damaged") from None


def load_denoiser(folder: str | Path, which: str = "ema", device: str | torch.device = "cpu") -> Denoiser:
    """Rebuild the network stored in ``folder`` and load its ``which`` weights (frozen, eval mode)."""
    model = Denoiser(read_denoiser_config(folder))
    load_weights(model, folder, which)
    return model.to(device).eval().requires_grad_(False)


def load_optimizers(optimizers: list[torch.optim.Optimizer], folder: str | Path) -> None:
    """Restore optimiser state saved by ``save_checkpoint``."""
    path = Path(folder) / "optim.pt"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=PICKLE_PROTOCOL_WARNING)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{path}: refused: {describe_refused_pickle(err, path)}; nothing in it was executed") from None
    except Exception as err:  # noqa: BLE001 - a damaged pickle fails in many ways; one line is the contract
        raise ValueError(f"{path}: not a readable optimiser state ({first_line(err)})") from None
    if not isinstance(state, dict) or not isinstance(state.get("optimizers"), list):
        raise ValueError(f"{path}: not an optimiser state saved by this project")
    if len(state["optimizers"]) != len(optimizers):
        raise ValueError(f"{path} holds {len(state['optimizers'])} optimiser states, this run has {len(optimizers)}")
    for opt, sd in zip(optimizers, state["optimizers"]):
        try:
            opt.load_state_dict(sd)
        except (ValueError, KeyError, TypeError, RuntimeError) as err:
            raise ValueError(f"{path}: does not fit this run's optimisers ({first_line(err)})") from None


def require_stage(folder: str | Path, stages: tuple[str, ...], *, complete: bool = True) -> CheckpointMeta:
    """Refuse a checkpoint from another stage (or an unfinished one) with a one-line ValueError."""
    meta = read_meta(folder)
    if meta.stage not in stages:
        raise ValueError(f"checkpoint {folder} is from stage {meta.stage!r}; expected one of {list(stages)}")
    if complete and not meta.complete:
        raise ValueError(f"checkpoint {folder} ({meta.stage}) is unfinished: step {meta.step} of {meta.total_steps}")
    return meta
