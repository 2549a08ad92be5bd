"""LoRA files merged into loaded networks: read, hand to the network's family for conversion, check, merge.

A diffusion network's family (the ``TransformerFamily`` whose ``diffusers_classes`` name the network's class) knows
its LoRA layouts (``TransformerFamily.lora``, a ``LoraFormat``): whether a file's key names are its own, and how they
become the network's parameter names. A file whose keys another family claims is refused naming that family, before
anything merges. Text-encoder pairs (kohya ``lora_te_``/``lora_te1_``, ``text_encoder.``/``text_encoders.``) are
matched to the encoder's layer names. Merging itself is ``models.lora_weights``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from models.checkpoint_files import read_shapes
from models.families.catalog import family_of_network_class, network_families
from models.families.kinds import TransformerFamily
from models.loading import load_state_dict
from models.lora_weights import (
    MAX_LISTED,
    LoraError,
    LoraFormat,
    LoraWeights,
    LowRank,
    grouped,
    merge_lora,
    part_of,
)

__all__ = [
    "LoraContents",
    "LoraError",
    "LoraWeights",
    "LowRank",
    "apply_lora_to_diffusion_model",
    "apply_lora_to_text_encoder",
    "inspect_lora",
    "lora_suffix",
    "merge_lora",
]

TEXT_ENCODER_PREFIXES = ("lora_te_", "lora_te1_", "text_encoder.", "text_encoders.")


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
    text_encoder = [name for name in names if _is_text_encoder(name)]
    return LoraContents(diffusion_model=len(text_encoder) < len(names), text_encoder=bool(text_encoder))


def lora_suffix(path: Path, strength: float) -> str:
    """The manager-key suffix of a model patched by ``path`` at ``strength``: the file's real path, size and
    modification time (an edited file patches anew) and the strength."""
    real = Path(path).resolve()
    stat = real.stat()
    return f"+lora({real}:{stat.st_size}:{stat.st_mtime_ns}@{strength!r})"


def apply_lora_to_diffusion_model(module: torch.nn.Module, path: Path, strength: float) -> torch.nn.Module:
    """Merge the diffusion-model weights of the LoRA file ``path`` into ``module`` (in place; a
    ``ModelManager.derive`` transform), converted by ``module``'s family.

    Raises ``LoraError`` (no weight changed) for a network whose family has no LoRA layouts, a file without
    diffusion-model weights, one whose keys are another family's (naming it) or no family's, and targets that do not
    fit; ``CorruptModelFileError`` for a damaged file.
    """
    path = Path(path)
    family, lora = _family_of(path, module)
    state = {key: tensor for key, tensor in _lora_state(path).items() if not _is_text_encoder(key)}
    if not state:
        raise LoraError(path, "has no weights for the diffusion model (only for the text encoder)")
    if not lora.claims(list(state)):
        raise LoraError(path, _not_claimed(family, list(state)))
    return merge_lora(module, lora.convert(path, state), strength)


def apply_lora_to_text_encoder(module: torch.nn.Module, path: Path, strength: float) -> torch.nn.Module:
    """Merge the text-encoder weights of the LoRA file ``path`` into ``module``, its layer names matched to the
    file's."""
    path = Path(path)
    stripped = {}
    for key, tensor in _lora_state(path).items():
        prefix = next((prefix for prefix in TEXT_ENCODER_PREFIXES if key.startswith(prefix)), None)
        if prefix is not None:
            stripped[key.removeprefix(prefix)] = tensor
    weights = grouped(path, stripped)
    if not weights:
        raise LoraError(path, "has no weights for the text encoder")
    return merge_lora(module, _matched_to(weights, module), strength)


def _lora_state(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors, checked to be LoRA weights Reelgraph merges."""
    state = load_state_dict(path)
    _check_names(path, list(state))
    return state


def _is_text_encoder(key: str) -> bool:
    return key.startswith(TEXT_ENCODER_PREFIXES)


def _family_of(path: Path, module: torch.nn.Module) -> tuple[TransformerFamily, LoraFormat]:
    """The family of ``module``'s class and its LoRA layouts; ``LoraError`` when it has none."""
    class_name = type(module).__name__
    family = family_of_network_class(class_name)
    if family is None:
        raise LoraError(path, f"Reelgraph cannot merge LoRAs into a {class_name} network")
    if family.lora is None:
        raise LoraError(path, f"Reelgraph cannot merge LoRAs into {family.label} yet")
    return family, family.lora


def _not_claimed(family: TransformerFamily, names: list[str]) -> str:
    """Why ``family`` does not take a LoRA with these diffusion-model keys: the family whose layout they are, if
    any."""
    owner = next((other for other in network_families() if other.lora is not None and other.lora.claims(names)), None)
    if owner is not None:
        return f"this LoRA is for {owner.label}, not for {family.label} (the model it was given)"
    sample = ", ".join(names[:MAX_LISTED])
    return f"this LoRA is for another architecture: its keys ({sample}, ...) are no LoRA layout of {family.label}"


def _check_names(path: Path, names: list[str]) -> None:
    """``LoraError`` unless every tensor of the file is a LoRA weight Reelgraph merges."""
    if any("dora_scale" in name for name in names):
        raise LoraError(path, "a DoRA (it has dora_scale tensors), which Reelgraph cannot merge")
    unknown = [name for name in names if part_of(name) is None]
    if len(unknown) == len(names):
        sample = ", ".join(names[:MAX_LISTED]) or "no tensors"
        raise LoraError(path, f"holds no LoRA weights (its first tensors: {sample}); is it a LoRA?")
    if unknown:
        listed = ", ".join(unknown[:MAX_LISTED])
        raise LoraError(
            path,
            f"has {len(unknown)} tensors that are no LoRA weights Reelgraph can merge ({listed}; LoHa and LoKr "
            "are not supported)",
        )


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
