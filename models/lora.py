"""LoRA files merged into loaded networks: read, convert to the network's own parameter names, check, merge.

Diffusion-model LoRAs come in several layouts (Wan's original names with ``diffusion_model.`` and
``lora_down``/``lora_up``/``alpha`` as lightx2v and most Civitai releases ship them, or ``lora_A``/``lora_B``; kohya
and musubi ``lora_unet_``; diffusers' ``transformer.`` names). Low-rank pairs go through diffusers'
``WanLoraLoaderMixin.lora_state_dict``, which converts them to diffusers names with alpha/rank folded in. Whole-tensor
deltas (``.diff``, ``.diff_b``, ``.diff_m`` for modulations), which it drops or turns into peft biases, are renamed
with diffusers' checkpoint key conversion and added whole. Text-encoder pairs (kohya ``lora_te_``/``lora_te1_``,
``text_encoder.``/``text_encoders.``) are matched to the encoder's layer names.

Nothing needs peft: ``merge_lora`` adds ``strength * up @ down`` to each weight in float32 and casts back to the
weight's dtype, after checking every target against the network, so a LoRA that does not fit changes no weight.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from models.checkpoint_files import read_shapes
from models.errors import ModelLoadError
from models.loading import load_state_dict

__all__ = [
    "LoraContents",
    "LoraError",
    "LoraFile",
    "LoraWeights",
    "LowRank",
    "apply_lora_to_diffusion_model",
    "apply_lora_to_text_encoder",
    "inspect_lora",
    "lora_suffix",
    "merge_lora",
    "read_lora",
]

logger = logging.getLogger(__name__)

ORIGINAL_PREFIX = "diffusion_model."
DIFFUSERS_PREFIX = "transformer."
TEXT_ENCODER_PREFIXES = ("lora_te_", "lora_te1_", "text_encoder.", "text_encoders.")
FULL_DELTA_SUFFIXES = (".diff", ".diff_b", ".diff_m")
# Key suffix -> the pair part it holds ("down", "up", "alpha") or, for a whole delta, the parameter it changes.
_PARTS = (
    (".lora_down.weight", "down"),
    (".lora_A.weight", "down"),
    (".lora_up.weight", "up"),
    (".lora_B.weight", "up"),
    (".alpha", "alpha"),
    (".lora_B.bias", ".bias"),
    (".diff_b", ".bias"),
    (".diff_m", ".modulation"),
    (".diff", ".weight"),
)
_MAX_LISTED = 3


class LoraError(ModelLoadError):
    """A LoRA file that cannot be merged: no LoRA weights, a layout Reelgraph cannot convert, or targets that do
    not fit the network (a LoRA for another architecture)."""


@dataclass(frozen=True)
class LowRank:
    """One layer's low-rank update: ``scale * up @ down`` (``down`` [rank, in], ``up`` [out, rank])."""

    down: torch.Tensor
    up: torch.Tensor
    scale: float = 1.0


@dataclass(frozen=True)
class LoraWeights:
    """A LoRA's changes to one network: low-rank pairs by layer name, whole deltas by parameter name."""

    path: Path
    pairs: Mapping[str, LowRank] = field(default_factory=dict)
    deltas: Mapping[str, torch.Tensor] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.pairs or self.deltas)


@dataclass(frozen=True)
class LoraFile:
    """A LoRA file's weights for the diffusion model (diffusers names) and the text encoder (names as in the file,
    matched to the encoder's layers when merged)."""

    diffusion_model: LoraWeights
    text_encoder: LoraWeights


@dataclass(frozen=True)
class LoraContents:
    """Which networks a LoRA file changes, from its key names alone."""

    diffusion_model: bool
    text_encoder: bool


def inspect_lora(path: Path) -> LoraContents:
    """Which networks ``path`` has LoRA weights for, reading only its header (safetensors).

    Raises ``CorruptModelFileError`` for a damaged file and ``LoraError`` for a file with no LoRA weights, or with
    tensors that are none (LoHa, LoKr, DoRA).
    """
    names = list(read_shapes(path).tensors)
    _check_names(path, names)
    text_encoder = [name for name in names if name.startswith(TEXT_ENCODER_PREFIXES)]
    return LoraContents(diffusion_model=len(text_encoder) < len(names), text_encoder=bool(text_encoder))


def lora_suffix(path: Path, strength: float) -> str:
    """The manager-key suffix of a model patched by ``path`` at ``strength``: the file's real path, size and
    modification time (an edited file patches anew) and the strength."""
    real = Path(path).resolve()
    stat = real.stat()
    return f"+lora({real}:{stat.st_size}:{stat.st_mtime_ns}@{strength!r})"


def read_lora(path: Path) -> LoraFile:
    """The weights of the LoRA file ``path``, converted to diffusers names for the diffusion model.

    Raises ``CorruptModelFileError`` for a damaged file, ``LoraError`` for one with no LoRA weights, tensors that
    are no LoRA weights, a DoRA, or a layout diffusers cannot convert.
    """
    path = Path(path)
    state = load_state_dict(path)
    _check_names(path, list(state))
    text_encoder = {key: tensor for key, tensor in state.items() if key.startswith(TEXT_ENCODER_PREFIXES)}
    diffusion_model = {key: tensor for key, tensor in state.items() if key not in text_encoder}
    return LoraFile(_diffusion_model_weights(path, diffusion_model), _text_encoder_weights(path, text_encoder))


def merge_lora(module: torch.nn.Module, weights: LoraWeights, strength: float) -> torch.nn.Module:
    """Add ``strength`` times ``weights`` to ``module``'s parameters (in place) and return it.

    Every target is checked first: a layer or parameter the module lacks, or one of another shape, raises
    ``LoraError`` naming a few of them, and no weight changes.
    """
    parameters = dict(module.named_parameters())
    misfits = _misfits(weights, parameters)
    if misfits:
        total = len(weights.pairs) + len(weights.deltas)
        listed = "; ".join(misfits[:_MAX_LISTED])
        raise LoraError(
            weights.path,
            f"this LoRA is for another architecture: {len(misfits)} of its {total} targets do not fit the model "
            f"({listed}{'; ...' if len(misfits) > _MAX_LISTED else ''})",
        )
    with torch.no_grad():
        for layer, pair in weights.pairs.items():
            _merge_pair(parameters[f"{layer}.weight"], pair, strength * pair.scale)
        for name, delta in weights.deltas.items():
            parameter = parameters[name]
            parameter.copy_(parameter.float().add_(delta.to(parameter.device, torch.float32), alpha=strength))
    logger.info(
        "merged %s at strength %g: %d low-rank layers, %d whole deltas",
        weights.path.name,
        strength,
        len(weights.pairs),
        len(weights.deltas),
    )
    return module


def apply_lora_to_diffusion_model(module: torch.nn.Module, path: Path, strength: float) -> torch.nn.Module:
    """Read ``path`` and merge its diffusion-model weights into ``module`` (a ``ModelManager.derive`` transform)."""
    weights = read_lora(path).diffusion_model
    if not weights:
        raise LoraError(path, "has no weights for the diffusion model (only for the text encoder)")
    return merge_lora(module, weights, strength)


def apply_lora_to_text_encoder(module: torch.nn.Module, path: Path, strength: float) -> torch.nn.Module:
    """Read ``path`` and merge its text-encoder weights into ``module``, its layer names matched to the file's."""
    weights = read_lora(path).text_encoder
    if not weights:
        raise LoraError(path, "has no weights for the text encoder")
    return merge_lora(module, _matched_to(weights, module), strength)


def _check_names(path: Path, names: list[str]) -> None:
    """``LoraError`` unless every tensor of the file is a LoRA weight Reelgraph merges."""
    if any("dora_scale" in name for name in names):
        raise LoraError(path, "a DoRA (it has dora_scale tensors), which Reelgraph cannot merge")
    unknown = [name for name in names if _part_of(name) is None]
    if len(unknown) == len(names):
        sample = ", ".join(names[:_MAX_LISTED]) or "no tensors"
        raise LoraError(path, f"holds no LoRA weights (its first tensors: {sample}); is it a LoRA?")
    if unknown:
        listed = ", ".join(unknown[:_MAX_LISTED])
        raise LoraError(
            path,
            f"has {len(unknown)} tensors that are no LoRA weights Reelgraph can merge ({listed}; LoHa and LoKr "
            "are not supported)",
        )


def _diffusion_model_weights(path: Path, state: dict[str, torch.Tensor]) -> LoraWeights:
    """Low-rank pairs through diffusers' Wan LoRA conversion; whole deltas renamed with its checkpoint conversion."""
    if not state:
        return LoraWeights(path)
    whole = {key: state.pop(key) for key in list(state) if _is_original_delta(key)}
    converted = _diffusers_lora(path, state) if state else {}
    low_rank = _grouped(path, {key.removeprefix(DIFFUSERS_PREFIX): tensor for key, tensor in converted.items()})
    original = _grouped(path, {key.removeprefix(ORIGINAL_PREFIX): tensor for key, tensor in whole.items()})
    deltas = dict(low_rank.deltas)
    for name, delta in _diffusers_names(original.deltas).items():
        _accumulate(deltas, name, delta)
    return LoraWeights(path, low_rank.pairs, deltas)


def _text_encoder_weights(path: Path, state: dict[str, torch.Tensor]) -> LoraWeights:
    stripped = {}
    for key, tensor in state.items():
        prefix = next(prefix for prefix in TEXT_ENCODER_PREFIXES if key.startswith(prefix))
        stripped[key.removeprefix(prefix)] = tensor
    return _grouped(path, stripped)


def _is_original_delta(key: str) -> bool:
    return key.startswith(ORIGINAL_PREFIX) and key.endswith(FULL_DELTA_SUFFIXES)


def _diffusers_lora(path: Path, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers' conversion of a Wan LoRA's low-rank pairs to diffusers names; a layout it cannot convert raises
    ``LoraError``."""
    from diffusers.loaders import WanLoraLoaderMixin

    try:
        return WanLoraLoaderMixin.lora_state_dict(state)
    except (KeyError, ValueError, IndexError, RuntimeError) as exc:
        sample = ", ".join(list(state)[:_MAX_LISTED])
        raise LoraError(
            path,
            f"this LoRA is for another architecture: its keys are no Wan LoRA layout ({sample}, ...; "
            f"the conversion stopped at {exc!r})",
        ) from exc


def _diffusers_names(deltas: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Whole deltas under Wan's original parameter names, renamed to diffusers' names."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    return convert_wan_transformer_to_diffusers(dict(deltas))


def _part_of(key: str) -> tuple[str, str] | None:
    """``(stem, part)`` of a LoRA key (see ``_PARTS``), or None for a key that is no LoRA weight."""
    for suffix, part in _PARTS:
        if key.endswith(suffix):
            return key[: -len(suffix)], part
    return None


def _grouped(path: Path, state: Mapping[str, torch.Tensor]) -> LoraWeights:
    """LoRA tensors by layer: pairs (alpha/rank as their scale) and whole deltas; half a pair, or a tensor that is
    no LoRA weight, raises ``LoraError``."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    deltas: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        found = _part_of(key)
        if found is None:
            raise LoraError(path, f"{key} is no LoRA weight Reelgraph can merge")
        stem, part = found
        if part.startswith("."):
            _accumulate(deltas, stem + part, tensor)
        else:
            parts.setdefault(stem, {})[part] = tensor
    return LoraWeights(path, {layer: _pair(path, layer, found) for layer, found in parts.items()}, deltas)


def _pair(path: Path, layer: str, parts: Mapping[str, torch.Tensor]) -> LowRank:
    if "down" not in parts or "up" not in parts:
        missing = "down (lora_down/lora_A)" if "down" not in parts else "up (lora_up/lora_B)"
        raise LoraError(path, f"{layer} has no {missing} matrix")
    down, up = parts["down"], parts["up"]
    if down.dim() != 2 or up.dim() != 2 or up.shape[1] != down.shape[0]:
        raise LoraError(
            path, f"{layer}: down {list(down.shape)} and up {list(up.shape)} are no low-rank pair (2-D, same rank)"
        )
    alpha = parts.get("alpha")
    return LowRank(down, up, 1.0 if alpha is None else float(alpha) / down.shape[0])


def _accumulate(deltas: dict[str, torch.Tensor], name: str, delta: torch.Tensor) -> None:
    """Add ``delta`` for parameter ``name`` to ``deltas`` (summed with one already there)."""
    deltas[name] = deltas[name] + delta if name in deltas else delta


def _misfits(weights: LoraWeights, parameters: Mapping[str, torch.Tensor]) -> list[str]:
    """What of ``weights`` does not fit ``parameters``, one line per target."""
    misfits = []
    for layer, pair in weights.pairs.items():
        weight = parameters.get(f"{layer}.weight")
        made = [pair.up.shape[0], pair.down.shape[1]]
        if weight is None or weight.dim() != 2:
            misfits.append(f"{layer}: no such linear layer in the model")
        elif list(weight.shape) != made:
            misfits.append(f"{layer}: the LoRA makes {made}, the model's weight is {list(weight.shape)}")
    for name, delta in weights.deltas.items():
        parameter = parameters.get(name)
        if parameter is None:
            misfits.append(f"{name}: no such parameter in the model")
        elif parameter.shape != delta.shape:
            misfits.append(f"{name}: the LoRA has {list(delta.shape)}, the model {list(parameter.shape)}")
    return misfits


def _merge_pair(weight: torch.Tensor, pair: LowRank, factor: float) -> None:
    """``weight += factor * up @ down`` computed in float32 (one fused product-add), stored in the weight's dtype."""
    merged = weight.float()
    merged.addmm_(pair.up.to(weight.device, torch.float32), pair.down.to(weight.device, torch.float32), alpha=factor)
    weight.copy_(merged)


def _matched_to(weights: LoraWeights, module: torch.nn.Module) -> LoraWeights:
    """``weights`` renamed to ``module``'s layer names: a file name matches the layer whose name, with dots as
    underscores (kohya's flattening), it equals or ends with (longest wins); unmatched names are kept, so that
    ``merge_lora`` reports them."""
    layers = {name.replace(".", "_"): name for name, _ in module.named_modules() if name}

    def match(stem: str) -> str:
        flat = stem.replace(".", "_")
        found = [name for layer_flat, name in layers.items() if flat == layer_flat or flat.endswith("_" + layer_flat)]
        return max(found, key=len, default=stem)

    def delta_name(name: str) -> str:
        stem, _, parameter = name.rpartition(".")
        return f"{match(stem)}.{parameter}"

    pairs = {match(stem): pair for stem, pair in weights.pairs.items()}
    deltas = {delta_name(name): delta for name, delta in weights.deltas.items()}
    return LoraWeights(weights.path, pairs, deltas)
