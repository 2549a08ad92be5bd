"""The Mochi VAE from single files in Genmo's original key layout (``mochi_vae.safetensors``: the encoder's keys under
``encoder.``, the decoder's under ``decoder.``; Genmo's separate ``encoder.safetensors`` / ``decoder.safetensors`` hold
the same keys without the prefix), built as diffusers' ``AutoencoderKLMochi``; ``mochi_vae_to_original`` writes that
layout back (for tiny stand-in files).

Genmo numbers each side's modules in one flat list, diffusers names them by stage:

- encoder: ``layers.0`` (a linear ``proj_in`` over RGB and its Fourier features), then one entry per residual block
  of ``block_in``, then one per down stage (``layers.J.layers.0`` its strided convolution ``conv_in``,
  ``layers.J.layers.I`` for I >= 1 its residual blocks), then one per residual block of ``block_out``;
  ``output_norm``, ``output_proj``;
- decoder: ``blocks.0.0`` (``conv_in``) and ``blocks.0.I`` (``block_in``'s residual blocks), ``blocks.K.blocks.I`` and
  ``blocks.K.proj`` (up stage K - 1), ``blocks.N`` (``block_out``), ``output_proj``;
- a residual block: ``stack.0`` / ``stack.2`` / ``stack.3`` / ``stack.5`` = ``norm1`` / ``conv1`` / ``norm2`` /
  ``conv2``; with attention also ``attn_block.norm`` (diffusers' ``norms.I``) and ``attn_block.attn.qkv`` (q, k and v
  fused) and ``attn_block.attn.out`` (diffusers' ``attentions.I``).

Read from shapes: the widths of both sides, residual blocks per stage, which stages attend, the temporal and spatial
expansion of each stage (from the encoder's strided convolutions; a file with only the decoder is refused: Reelgraph
builds the whole autoencoder), the latent and RGB channels. The latent statistics are not in the file: they are the
published ones (``models.families.mochi.latents``). Released: encoder widths (64, 128, 256, 384), decoder widths
(128, 256, 512, 768), (3, 3, 4, 6, 3) residual blocks, attention in every encoder stage but the first, expansions
(1, 2, 3) in time and (2, 2, 2) in space, 12 latent channels.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from models.errors import StateDictError
from models.families.mochi.latents import MOCHI_LATENT
from models.families.single_file import build_from_state_dict

if TYPE_CHECKING:
    from diffusers import AutoencoderKLMochi

__all__ = [
    "MochiVaeSpec",
    "detect_mochi_vae",
    "is_mochi_vae",
    "mochi_vae_from_state_dict",
    "mochi_vae_to_diffusers",
    "mochi_vae_to_original",
]

GROUP_NORM_GROUPS = 32  # diffusers' Mochi VAE norms use 32 groups and attention heads of 32 channels
ENCODER_IN_CHANNELS = 15  # RGB and its Fourier features (sine and cosine at two frequencies), as the encoder makes them

_ENCODER_KEYS = ("encoder.output_proj.weight", "encoder.layers.1.stack.0.weight")
_DECODER_KEYS = ("decoder.blocks.0.0.weight", "decoder.blocks.0.1.stack.0.weight")
_RESNET = (("stack.0.", "norm1.norm_layer."), ("stack.2.", "conv1.conv."), ("stack.3.", "norm2.norm_layer."))
_RESNET += (("stack.5.", "conv2.conv."),)


@dataclass(frozen=True)
class MochiVaeSpec:
    """The ``AutoencoderKLMochi`` kwargs a Mochi VAE file makes (latent statistics included)."""

    config: Mapping[str, Any]

    def describe(self) -> str:
        """E.g. ``"Mochi VAE, 12 latent channels, 8x spatial and 6x temporal compression"``."""
        config = self.config
        return (
            f"Mochi VAE, {config['latent_channels']} latent channels, {math.prod(config['spatial_expansions'])}x "
            f"spatial and {math.prod(config['temporal_expansions'])}x temporal compression"
        )


def is_mochi_vae(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` is a Mochi VAE (either side) in Genmo's layout, prefixed ``encoder.`` / ``decoder.``
    or one side alone without prefix."""
    return _sides(state_dict) is not None


def detect_mochi_vae(state_dict: Mapping[str, torch.Tensor]) -> MochiVaeSpec:
    """The diffusers config of a Mochi VAE, from its tensor shapes alone (meta tensors do)."""
    sides = _sides(state_dict)
    if sides is None:
        raise StateDictError(
            "not a Mochi VAE: neither the encoder's output_proj.weight nor the decoder's blocks.0.0.weight"
        )
    encoder_prefix, decoder_prefix = sides
    if encoder_prefix is None or decoder_prefix is None:
        missing = "encoder" if encoder_prefix is None else "decoder"
        raise StateDictError(
            f"this Mochi VAE file holds only one half of the autoencoder (no {missing}); use a file with both, such "
            "as Comfy-Org's mochi_vae.safetensors"
        )
    encoder = _encoder_layout(_shapes_under(state_dict, encoder_prefix))
    decoder = _decoder_layout(_shapes_under(state_dict, decoder_prefix))
    if encoder.layers != decoder.layers:
        raise StateDictError(
            f"the Mochi VAE's encoder has {list(encoder.layers)} residual blocks per stage but its decoder "
            f"{list(decoder.layers)}: diffusers' AutoencoderKLMochi takes one count for both"
        )
    if encoder.latent != decoder.latent:
        raise StateDictError(
            f"the Mochi VAE's encoder makes {encoder.latent} latent channels but its decoder takes {decoder.latent}"
        )
    for stage, (t, s) in enumerate(zip(encoder.temporal, encoder.spatial, strict=True)):
        rows = decoder.proj_rows[stage]
        if rows != decoder.widths[stage] * t * s * s:
            raise StateDictError(
                f"the decoder's up stage for encoder stage {stage + 1} makes {rows} values per position; the "
                f"encoder's {t}x{s}x{s} downsampling needs {decoder.widths[stage] * t * s * s}"
            )
    if encoder.latent != MOCHI_LATENT.channels:
        raise StateDictError(
            f"a Mochi VAE with {encoder.latent} latent channels: the published latent statistics are for "
            f"{MOCHI_LATENT.channels}"
        )
    config = {
        "in_channels": encoder.in_channels,
        "out_channels": decoder.out_channels,
        "encoder_block_out_channels": encoder.widths,
        "decoder_block_out_channels": decoder.widths,
        "latent_channels": encoder.latent,
        "layers_per_block": encoder.layers,
        "act_fn": "silu",
        "temporal_expansions": encoder.temporal,
        "spatial_expansions": encoder.spatial,
        "add_attention_block": encoder.attention,
        "latents_mean": MOCHI_LATENT.mean,
        "latents_std": MOCHI_LATENT.std,
        "scaling_factor": 1.0,
    }
    return MochiVaeSpec(MappingProxyType(config))


def mochi_vae_from_state_dict(state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype) -> AutoencoderKLMochi:
    """An ``AutoencoderKLMochi`` (eval mode) holding a single file's weights in ``dtype``; other keys are ignored."""
    from diffusers import AutoencoderKLMochi

    spec = detect_mochi_vae(state_dict)
    sides = _sides(state_dict)
    assert sides is not None and sides[0] is not None and sides[1] is not None
    original = {f"encoder.{key}": tensor for key, tensor in _under(state_dict, sides[0]).items()}
    original |= {f"decoder.{key}": tensor for key, tensor in _under(state_dict, sides[1]).items()}
    converted = mochi_vae_to_diffusers(original, spec)
    naming = _Naming.of(spec.config)
    return build_from_state_dict(
        AutoencoderKLMochi, spec.config, converted, dtype, spec.describe(), lambda key: naming.source(key).name
    )


def mochi_vae_to_diffusers(original: dict[str, torch.Tensor], spec: MochiVaeSpec) -> dict[str, torch.Tensor]:
    """Genmo's key names (``encoder.`` / ``decoder.`` prefixed) to diffusers' (``original`` is emptied). Tensors
    the model does not have keep their names, for the shape check to report."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLMochi

    with init_empty_weights():
        expected = list(AutoencoderKLMochi(**spec.config).state_dict())
    naming = _Naming.of(spec.config)
    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for key in expected:
        source = naming.source(key)
        groups[source.name].append((source.part, key))
    converted: dict[str, torch.Tensor] = {}
    for name, targets in groups.items():
        tensor = original.pop(name, None)
        if tensor is None:
            continue  # reported missing by the shape check
        if tensor.shape[0] % len(targets):
            raise StateDictError(f"{name} is {tuple(tensor.shape)}: its rows do not split into q, k and v")
        for chunk, (_, key) in zip(tensor.chunk(len(targets)), sorted(targets), strict=True):
            converted[key] = chunk
    converted.update(original)
    original.clear()
    return converted


def mochi_vae_to_original(
    diffusers_state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """An ``AutoencoderKLMochi`` state dict (of the model ``config`` builds) in Genmo's key names, ``encoder.`` /
    ``decoder.`` prefixed, q, k and v fused: the exact inverse of ``mochi_vae_to_diffusers``."""
    naming = _Naming.of(config)
    groups: dict[str, list[tuple[int, torch.Tensor]]] = defaultdict(list)
    for key, tensor in diffusers_state_dict.items():
        source = naming.source(key)
        groups[source.name].append((source.part, tensor))
    return {
        name: parts[0][1] if len(parts) == 1 else torch.cat([t for _, t in sorted(parts, key=lambda p: p[0])])
        for name, parts in groups.items()
    }


class _Source(NamedTuple):
    name: str
    part: int = 0  # the row block of q (0), k (1) or v (2) in a fused qkv


@dataclass(frozen=True)
class _Naming:
    """diffusers names -> Genmo names for one layout: Genmo's flat indices depend on how many residual blocks
    ``block_in`` has and how many stages there are."""

    block_in: int
    stages: int

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> _Naming:
        return cls(int(config["layers_per_block"][0]), len(config["encoder_block_out_channels"]) - 1)

    def source(self, key: str) -> _Source:
        side, _, rest = key.partition(".")
        rename: Callable[[str], _Source] | None = {"encoder": self._encoder, "decoder": self._decoder}.get(side)
        if rename is None:
            return _Source(key)
        source = rename(rest)
        return _Source(f"{side}.{source.name}", source.part)

    def _encoder(self, rest: str) -> _Source:
        for diffusers, original in (
            ("proj_in.", "layers.0."),
            ("norm_out.norm_layer.", "output_norm."),
            ("proj_out.", "output_proj."),
        ):
            if rest.startswith(diffusers):
                return _Source(original + rest[len(diffusers) :])
        match = re.fullmatch(r"(block_in|block_out|down_blocks\.(\d+))\.(.*)", rest)
        if not match:
            return _Source(rest)
        stage, down, inner = match.groups()
        if down is not None:
            head = f"layers.{1 + self.block_in + int(down)}.layers."
            if inner.startswith("conv_in.conv."):
                return _Source(f"{head}0.{inner.removeprefix('conv_in.conv.')}")
            return _unit(inner, lambda i: f"{head}{i + 1}.", rest)
        first = 1 if stage == "block_in" else 1 + self.block_in + self.stages
        return _unit(inner, lambda i: f"layers.{first + i}.", rest)

    def _decoder(self, rest: str) -> _Source:
        for diffusers, original in (("conv_in.", "blocks.0.0."), ("proj_out.", "output_proj.")):
            if rest.startswith(diffusers):
                return _Source(original + rest[len(diffusers) :])
        match = re.fullmatch(r"(block_in|block_out|up_blocks\.(\d+))\.(.*)", rest)
        if not match:
            return _Source(rest)
        stage, up, inner = match.groups()
        if up is not None:
            head = f"blocks.{int(up) + 1}."
            if inner.startswith("proj."):
                return _Source(head + inner)
            return _unit(inner, lambda i: f"{head}blocks.{i}.", rest)
        if stage == "block_in":
            return _unit(inner, lambda i: f"blocks.0.{i + 1}.", rest)
        return _unit(inner, lambda i: f"blocks.{self.stages + 1}.{i}.", rest)


def _unit(inner: str, head: Callable[[int], str], whole: str) -> _Source:
    """A residual block's or attention's tensor (``resnets.I.``, ``norms.I.``, ``attentions.I.`` of a stage) under
    Genmo's name ``head(I)``."""
    match = re.fullmatch(r"(resnets|norms|attentions)\.(\d+)\.(.*)", inner)
    if not match:
        return _Source(whole)
    kind, index, tail = match.groups()
    unit = head(int(index))
    if kind == "norms" and tail.startswith("norm_layer."):
        return _Source(f"{unit}attn_block.norm.{tail.removeprefix('norm_layer.')}")
    if kind == "attentions":
        for part, name in enumerate(("to_q.", "to_k.", "to_v.")):
            if tail.startswith(name):
                return _Source(f"{unit}attn_block.attn.qkv.{tail.removeprefix(name)}", part)
        if tail.startswith("to_out.0."):
            return _Source(f"{unit}attn_block.attn.out.{tail.removeprefix('to_out.0.')}")
    if kind == "resnets":
        for original, diffusers in _RESNET:
            if tail.startswith(diffusers):
                return _Source(unit + original + tail.removeprefix(diffusers))
    return _Source(whole)


class _EncoderLayout(NamedTuple):
    in_channels: int
    widths: tuple[int, ...]
    layers: tuple[int, ...]
    attention: tuple[bool, ...]
    temporal: tuple[int, ...]
    spatial: tuple[int, ...]
    latent: int


class _DecoderLayout(NamedTuple):
    widths: tuple[int, ...]
    layers: tuple[int, ...]
    proj_rows: tuple[int, ...]  # per encoder stage (lowest first): the rows of the up stage undoing it
    latent: int
    out_channels: int


def _encoder_layout(shapes: Mapping[str, tuple[int, ...]]) -> _EncoderLayout:
    """The encoder's structure from its flat ``layers.J`` list."""
    width, in_channels = _shape(shapes, "layers.0.weight", 2, "encoder")
    if in_channels != ENCODER_IN_CHANNELS:
        raise StateDictError(
            f"encoder.layers.0.weight takes {in_channels} channels; the Mochi encoder feeds it RGB with its Fourier "
            f"features ({ENCODER_IN_CHANNELS})"
        )
    entries = sorted({int(m.group(1)) for key in shapes if (m := re.match(r"layers\.(\d+)\.", key))} - {0})
    kinds = []
    for index in entries:
        if f"layers.{index}.stack.0.weight" in shapes:
            kinds.append("resnet")
        elif f"layers.{index}.layers.0.weight" in shapes:
            kinds.append("down")
        else:
            raise StateDictError(f"encoder.layers.{index} is neither a residual block nor a down stage")
    pattern = "".join("r" if kind == "resnet" else "d" for kind in kinds)
    if entries != list(range(1, len(entries) + 1)) or not re.fullmatch(r"r+d+r+", pattern):
        raise StateDictError(
            "the Mochi VAE encoder's layers are not residual blocks, down stages, then residual blocks: is the "
            "file complete?"
        )
    block_in = len(pattern) - len(pattern.lstrip("r"))
    block_out = len(pattern) - len(pattern.rstrip("r"))
    widths, layers, attention = [width], [block_in], ["layers.1.attn_block.attn.qkv.weight" in shapes]
    temporal: list[int] = []
    spatial: list[int] = []
    for index in entries[block_in : len(entries) - block_out]:
        out_width, in_width, t, s, s_w = _shape(shapes, f"layers.{index}.layers.0.weight", 5, "encoder")
        if in_width != widths[-1] or s != s_w:
            raise StateDictError(
                f"encoder.layers.{index}.layers.0.weight is {(out_width, in_width, t, s, s_w)}: it does not follow "
                f"a stage of width {widths[-1]} with square spatial strides"
            )
        widths.append(out_width)
        layers.append(_count(shapes, rf"layers\.{index}\.layers\.(\d+)\.stack\."))
        attention.append(f"layers.{index}.layers.1.attn_block.attn.qkv.weight" in shapes)
        temporal.append(t)
        spatial.append(s)
    layers.append(block_out)
    first_out = entries[len(entries) - block_out]
    attention.append(f"layers.{first_out}.attn_block.attn.qkv.weight" in shapes)
    latent_rows = _shape(shapes, "output_proj.weight", 2, "encoder")[0]
    _check_widths(widths, "encoder")
    return _EncoderLayout(
        in_channels, tuple(widths), tuple(layers), tuple(attention), tuple(temporal), tuple(spatial), latent_rows // 2
    )


def _decoder_layout(shapes: Mapping[str, tuple[int, ...]]) -> _DecoderLayout:
    """The decoder's structure from its ``blocks.K`` list: ``blocks.0`` (``block_in``), up stages ``blocks.1`` (the
    deepest) to ``blocks.N-1``, ``blocks.N`` (``block_out``)."""
    top_width, latent = _shape(shapes, "blocks.0.0.weight", 5, "decoder")[:2]
    stages = sorted({int(m.group(1)) for key in shapes if (m := re.match(r"blocks\.(\d+)\.", key))})
    if stages != list(range(len(stages))) or len(stages) < 3:
        raise StateDictError("the Mochi VAE decoder's blocks are not numbered 0..N: is the file complete?")
    last = stages[-1]
    ups = range(1, last)
    projections = [_shape(shapes, f"blocks.{stage}.proj.weight", 2, "decoder") for stage in ups]
    out_channels, bottom_width = _shape(shapes, "output_proj.weight", 2, "decoder")
    widths = (bottom_width, *(columns for _, columns in reversed(projections)))  # diffusers' order: highest res first
    if widths[-1] != top_width:
        raise StateDictError(f"decoder.blocks.1 is {widths[-1]} wide but decoder.blocks.0.0 makes {top_width}")
    _check_widths(list(widths), "decoder")
    layers = (
        _count(shapes, rf"blocks\.{last}\.(\d+)\.stack\."),
        *(_count(shapes, rf"blocks\.{stage}\.blocks\.(\d+)\.stack\.") for stage in reversed(ups)),
        _count(shapes, r"blocks\.0\.(\d+)\.stack\."),
    )
    proj_rows = tuple(rows for rows, _ in reversed(projections))
    return _DecoderLayout(widths, layers, proj_rows, latent, out_channels)


def _count(shapes: Mapping[str, tuple[int, ...]], pattern: str) -> int:
    """How many distinct indices ``pattern``'s group takes over the keys."""
    return len({m.group(1) for key in shapes if (m := re.match(pattern, key))})


def _check_widths(widths: list[int], side: str) -> None:
    odd = [width for width in widths if width % GROUP_NORM_GROUPS]
    if odd:
        raise StateDictError(
            f"the Mochi VAE {side} has stages {odd} wide: its group norms and attention heads need multiples of "
            f"{GROUP_NORM_GROUPS}"
        )


def _shape(shapes: Mapping[str, tuple[int, ...]], name: str, ndim: int, side: str) -> tuple[int, ...]:
    shape = shapes.get(name)
    if shape is None:
        raise StateDictError(f"a Mochi VAE {side} needs {name}, which is missing: is the file complete?")
    if len(shape) != ndim:
        raise StateDictError(f"{side}.{name} has shape {shape}; Mochi's has {ndim} dimensions")
    return shape


def _sides(state_dict: Mapping[str, torch.Tensor]) -> tuple[str | None, str | None] | None:
    """The key prefixes of the encoder's and the decoder's tensors (None for a side the file lacks), or None when
    the file has neither: ``encoder.`` / ``decoder.`` (under any outer prefix), or none for a one-sided file."""
    encoder = _side_prefix(state_dict, _ENCODER_KEYS)
    decoder = _side_prefix(state_dict, _DECODER_KEYS)
    if encoder is None and decoder is None:
        if all(key.partition(".")[2] in state_dict for key in _ENCODER_KEYS):
            return "", None
        if all(key.partition(".")[2] in state_dict for key in _DECODER_KEYS):
            return None, ""
        return None
    return encoder, decoder


def _side_prefix(state_dict: Mapping[str, torch.Tensor], keys: tuple[str, str]) -> str | None:
    """The shortest prefix ending in ``encoder.`` / ``decoder.`` under which both ``keys`` exist."""
    identity, companion = keys
    side = identity.partition(".")[0] + "."
    outer = sorted(
        (key[: -len(identity)] for key in state_dict if key == identity or key.endswith("." + identity)), key=len
    )
    found = next((prefix for prefix in outer if prefix + companion in state_dict), None)
    return None if found is None else found + side


def _under(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}


def _shapes_under(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, tuple[int, ...]]:
    return {key: tuple(tensor.shape) for key, tensor in _under(state_dict, prefix).items()}
