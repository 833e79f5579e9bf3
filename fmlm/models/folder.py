"""Model folders: one format, hub style, for imported and self-trained models alike.

    config.json         ModelInfo: stage, architecture (DenoiserConfig), encoder and layer, tokenizer,
                        whitening mu/sigma, flow constants (with the guidance range), named sampler settings, source
    model.safetensors   the network's weights (fmlm.nn.Denoiser names)
    tokenizer/          the tokenizer whose ids the decoder head emits (Hugging Face files)
    README.md           the model card (fmlm.models.card)

``save_model`` writes a folder atomically (a temporary sibling, then a rename). ``load_model`` reads a
local folder, or a hub repository id through ``huggingface_hub`` when the hub is reachable; every problem
is a one-line ``ValueError``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmlm.config import ConfigError, from_dict, to_dict
from fmlm.files import first_line, write_folder_atomic
from fmlm.math.flow import FlowConfig
from fmlm.nn.config import DenoiserConfig

FORMAT = "fmlm-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
TOKENIZER_DIR = "tokenizer"
HUB_FILES = [CONFIG_FILE, WEIGHTS_FILE, CARD_FILE, f"{TOKENIZER_DIR}/*"]
STAGES = ("teacher", "teacher-nosc", "fixed-point", "flow-map", "flow-map-nosc")


@dataclass(frozen=True)
class ModelInfo:
    """What a model folder's ``config.json`` holds."""

    stage: str
    architecture: DenoiserConfig
    encoder: str  # the frozen encoder whose whitened latents the model denoises
    encoder_layer: int
    tokenizer: str  # the tokenizer of the decoder head's ids (a copy lives in tokenizer/)
    whitening_mu: float
    whitening_sigma: float
    flow: FlowConfig = field(default_factory=FlowConfig)  # lam, p_mean, p_std, t_eps and the guidance range
    samplers: dict[str, Any] = field(default_factory=dict)  # setting name -> SamplerConfig fields
    source: dict[str, Any] = field(default_factory=dict)  # provenance (file, sha256, weights, ...)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.format != FORMAT or self.format_version != FORMAT_VERSION:
            raise ConfigError(f"format: {self.format!r} v{self.format_version} is not {FORMAT!r} v{FORMAT_VERSION}")
        if self.stage not in STAGES:
            raise ConfigError(f"stage: {self.stage!r} is not one of {list(STAGES)}")
        if not self.whitening_sigma > 0:
            raise ConfigError(f"whitening_sigma: must be > 0, got {self.whitening_sigma}")
        for name, setting in self.samplers.items():
            if not isinstance(setting, dict):
                raise ConfigError(f"samplers.{name}: expected a mapping of SamplerConfig fields")


@dataclass
class PretrainedModel:
    """A loaded model folder: the frozen network, its facts and where it came from."""

    model: Any  # fmlm.nn.Denoiser, eval mode, no gradients
    info: ModelInfo
    folder: Path

    def tokenizer(self):
        """The Hugging Face tokenizer stored in the folder."""
        from transformers import AutoTokenizer

        path = self.folder / TOKENIZER_DIR
        if not path.is_dir():
            raise ValueError(f"{self.folder}: has no {TOKENIZER_DIR}/ folder")
        return AutoTokenizer.from_pretrained(str(path))

    def sampler(self, steps: int | None = None, overrides: list[str] | tuple[str, ...] = ()):
        """The stored sampler setting for ``steps`` as a ``SamplerConfig`` (``fmlm.models.sampling``), with the model's flow."""
        from fmlm.models.sampling import stored_setting
        from fmlm.samplers import sampler_for

        return sampler_for(self.info.flow, stored_setting(self.info.samplers, steps), overrides)

    def generate(self, n: int = 8, steps: int | None = None, *, length: int | None = None, seed: int = 0,
                 overrides: list[str] | tuple[str, ...] = (), device: str = "cpu", progress: bool = False) -> list[str]:
        """``n`` decoded texts, sampled with the stored setting for ``steps`` (None: the folder's default).

        ``seed`` picks the noise (sample ``i`` of seed ``k`` is the same whatever ``n`` or the batch size);
        ``overrides`` are other ``SamplerConfig`` fields as ``key=value``; ``length`` defaults to the model's rows."""
        from fmlm.models.sample import sample_texts

        if any(str(o).split("=", 1)[0].strip() == "seed" for o in overrides):
            raise ValueError("overrides: give the seed as generate(seed=...), not as an override")
        sampler = dataclasses.replace(self.sampler(steps, overrides), seed=seed)
        return sample_texts(self, sampler, n, length=length, device=device, progress=progress)[1]


def save_model(model, folder: str | Path, info: ModelInfo, *, tokenizer=None, card: str | None = None,
               overwrite: bool = False) -> Path:
    """Write ``model`` (a ``Denoiser``) and ``info`` as a model folder; refuse a non-empty ``folder``
    unless ``overwrite``. ``tokenizer`` (a Hugging Face tokenizer) is saved under tokenizer/."""
    from safetensors.torch import save_file

    from fmlm.models.card import model_card

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise ValueError(f"{folder}: already holds files; choose another folder or pass overwrite")
    if to_dict(model.config) != to_dict(info.architecture):
        raise ValueError("info.architecture does not describe this model's config")
    n_params = sum(p.numel() for p in model.parameters())

    def fill(tmp: Path) -> None:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, tmp / WEIGHTS_FILE, metadata={"format": FORMAT, "stage": info.stage})
        (tmp / CONFIG_FILE).write_text(json.dumps(to_dict(info), indent=2, sort_keys=True) + "\n")
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
        (tmp / CARD_FILE).write_text(card if card is not None else model_card(info, n_params))

    return write_folder_atomic(folder, fill, replace=True)


def read_info(folder: str | Path) -> ModelInfo:
    """The ``ModelInfo`` of a local model folder (one-line errors naming the file)."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"{folder}: not a model folder (no {CONFIG_FILE})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    try:
        return from_dict(ModelInfo, data)
    except ConfigError as err:
        raise ValueError(f"{path}: {err}") from None


def resolve_folder(path_or_repo_id: str | Path, revision: str | None = None) -> Path:
    """A local model folder, downloading a hub repository's model files first when given a repo id."""
    text = str(path_or_repo_id)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise ValueError(f"{text}: not a model folder (nor a hub repository id 'owner/name')")
    from fmlm.data.hub import hub_reachable

    if not hub_reachable():
        raise ValueError(f"{text}: not a local folder, and the Hugging Face hub is unreachable (offline?)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(text, revision=revision, allow_patterns=HUB_FILES))
    except Exception as err:  # noqa: BLE001 - hub errors come in many types; one line is the contract
        raise ValueError(f"{text}: cannot download from the Hugging Face hub: {first_line(err)}") from None


def check_weights_stage(weights: Path, stage: str) -> None:
    """Refuse weights whose safetensors metadata (written by ``save_model``) names another stage than
    config.json: ELF* and FMLM* share tensor names and shapes, so only this tells a swapped file."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        theirs = (f.metadata() or {}).get("stage")
    if theirs is not None and theirs != stage:
        raise ValueError(f"{weights}: holds the weights of stage {theirs!r}, but config.json describes stage "
                         f"{stage!r}; put the stage's own {WEIGHTS_FILE} back")


def load_model(path_or_repo_id: str | Path, *, device: str = "cpu", revision: str | None = None) -> PretrainedModel:
    """Load a model folder (local, or a hub repo id) as a frozen ``Denoiser`` on ``device``."""
    from fmlm.nn.denoiser import Denoiser
    from fmlm.train.checkpoint import read_safetensors

    folder = resolve_folder(path_or_repo_id, revision)
    info = read_info(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ValueError(f"{folder}: has no {WEIGHTS_FILE}")
    state = read_safetensors(weights)
    check_weights_stage(weights, info.stage)
    model = Denoiser(info.architecture)
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        key = (missing or unexpected)[0]
        raise ValueError(f"{weights}: does not fit config.json ({'missing' if missing else 'unexpected'} {key!r})")
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise ValueError(f"{weights}: {name!r} has shape {tuple(tensor.shape)}, config.json needs "
                             f"{tuple(own[name].shape)}")
    model.load_state_dict(state)
    return PretrainedModel(model.to(device).eval().requires_grad_(False), info, folder)
