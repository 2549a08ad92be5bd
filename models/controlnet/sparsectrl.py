"""AnimateDiff SparseCtrl files (``v3_sd15_sparsectrl_rgb.ckpt``, ``v3_sd15_sparsectrl_scribble.ckpt``) built as
diffusers' ``SparseControlNetModel``.

A SparseCtrl is an SD1.5 ControlNet whose down blocks carry AnimateDiff motion modules (one self-attention per
temporal transformer block), so its control spreads from the few conditioned frames to the others. The releases
name the ControlNet part as diffusers does (``conv_in``, ``down_blocks``, ``controlnet_down_blocks``,
``controlnet_mid_block``) and the motion modules as the original motion-module files do
(``down_blocks.N.motion_modules.M.temporal_transformer.transformer_blocks.K.attention_blocks.0``, ``norms.0``,
``ff_norm``, ``pos_encoder.pe``); diffusers' own layout (a Hub folder's weights) names them ``attn1``, ``norm1``,
``norm3``, ``pos_embed.pe``. Original names are converted by the motion-module converter; the stored positional
encodings are dropped and computed again, as diffusers does, at the length the file stores.

The condition: the RGB release encodes the VAE latent of a key frame with one convolution (diffusers'
``use_simplified_condition_embedding``, 4 channels), the scribble one encodes pixels with the usual ControlNet hint
encoder (3 channels). Both append the mask of conditioned frames as one more channel. Everything is read from
shapes; the head counts (8) are SD1.5's and AnimateDiff's and not in the weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import torch

from models.controlnet.checkpoint import DrivesUnet, NotAControlNetError, detect_controlnet, encoder_config, hint_widths
from models.errors import StateDictError
from models.families.animatediff.motion_checkpoint import is_motion_module, to_diffusers_names
from models.families.catalog import text_part_of, transformer_family_of, vae_family_of
from models.families.single_file import StateShapes, build_from_state_dict, key_prefix, unprefixed

if TYPE_CHECKING:
    from diffusers import SparseControlNetModel

__all__ = [
    "SparseCtrlSpec",
    "detect_sparsectrl",
    "is_sparsectrl",
    "sparsectrl_from_state_dict",
    "sparsectrl_to_original",
]

Layout = Literal["original", "diffusers"]

LABEL = "AnimateDiff SparseCtrl"
NUM_HEADS = 8  # SD1.5's spatial heads and AnimateDiff's temporal heads (neither is stored in the weights)
DEFAULT_MAX_FRAMES = 32
PIXEL_CHANNELS = 3
MOTION = "motion_modules"
HINT = "controlnet_cond_embedding"
_LAYOUT_NAMES = MappingProxyType({"original": "original layout", "diffusers": "diffusers layout"})
_ORIGINAL_IDENTITY = "down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight"
_DIFFUSERS_IDENTITY = "down_blocks.0.motion_modules.0.proj_in.weight"
_COMPANIONS = ("conv_in.weight", "time_embedding.linear_1.weight", "controlnet_down_blocks.0.weight")
_LAYOUT_KEYS: tuple[tuple[Layout, str], ...] = (
    ("original", _ORIGINAL_IDENTITY),
    ("diffusers", _DIFFUSERS_IDENTITY),
)
_ORIGINAL_PE = (
    "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe"
)
_DIFFUSERS_PE = "down_blocks.0.motion_modules.0.transformer_blocks.0.pos_embed.pe"
_TO_ORIGINAL = (
    (".pos_embed.", ".attention_blocks.0.pos_encoder."),
    (".attn1.", ".attention_blocks.0."),
    (".attn2.", ".attention_blocks.1."),
    (".norm1.", ".norms.0."),
    (".norm2.", ".norms.1."),
    (".norm3.", ".ff_norm."),
)


@dataclass(frozen=True)
class SparseCtrlSpec(DrivesUnet):
    """A SparseCtrl file's ``SparseControlNetModel`` kwargs, and where its tensors sit in the file.

    Attributes:
        config: the ``SparseControlNetModel`` kwargs read from the shapes.
        layout: ``"original"`` (the releases' motion-module names) or ``"diffusers"``.
        prefix: the key prefix of the SparseCtrl's tensors (``""`` in the releases).
    """

    config: Mapping[str, Any]
    layout: Layout
    prefix: str

    @property
    def condition_is_latent(self) -> bool:
        """Whether the condition is a VAE latent (the RGB release) rather than pixels (the scribble one)."""
        return bool(self.config["use_simplified_condition_embedding"])

    @property
    def condition_channels(self) -> int:
        """The channels of one condition frame, the mask not counted (4 for latents, 3 for pixels)."""
        return int(self.config["conditioning_channels"])

    @property
    def concat_mask(self) -> bool:
        """Whether the mask of conditioned frames goes in as one more channel."""
        return bool(self.config["concat_conditioning_mask"])

    @property
    def max_frames(self) -> int:
        """The longest sequence its motion modules' positional encoding covers."""
        return int(self.config["motion_max_seq_length"])

    def describe(self) -> str:
        """E.g. ``"AnimateDiff SparseCtrl (original layout), widths 320/640/1280/1280, latent condition (4 channels)
        plus mask, up to 32 frames"``."""
        widths = "/".join(str(width) for width in self.config["block_out_channels"])
        condition = "latent" if self.condition_is_latent else "pixel"
        mask = " plus mask" if self.concat_mask else ""
        return (
            f"{LABEL} ({_LAYOUT_NAMES[self.layout]}), widths {widths}, {condition} condition "
            f"({self.condition_channels} channels){mask}, up to {self.max_frames} frames"
        )


def is_sparsectrl(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the tensors are a SparseCtrl: a ControlNet with motion modules in its down blocks (either layout)."""
    return _layout(state_dict) is not None


def detect_sparsectrl(state_dict: Mapping[str, torch.Tensor]) -> SparseCtrlSpec:
    """The ``SparseControlNetModel`` config of a SparseCtrl from its tensor shapes (meta tensors do);
    ``NotAControlNetError`` for another model, ``StateDictError`` for an incomplete or unusual SparseCtrl."""
    found = _layout(state_dict)
    if found is None:
        raise NotAControlNetError(_what_it_is(state_dict))
    layout, prefix = found
    tensors = unprefixed(state_dict, prefix)
    config = _config_from_shapes(to_diffusers_names(tensors), _max_frames(tensors))
    return SparseCtrlSpec(MappingProxyType(config), layout, prefix)


def sparsectrl_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, spec: SparseCtrlSpec | None = None
) -> SparseControlNetModel:
    """The ``SparseControlNetModel`` of a SparseCtrl file (other tensors under other prefixes ignored) in ``dtype``,
    eval mode. ``spec`` (from ``detect_sparsectrl``) is detected afresh when not given."""
    from diffusers import SparseControlNetModel

    spec = spec or detect_sparsectrl(state_dict)
    tensors = to_diffusers_names(unprefixed(state_dict, spec.prefix))
    tensors |= _positional_encodings(spec, tensors)
    return build_from_state_dict(SparseControlNetModel, spec.config, tensors, dtype, LABEL, _file_namer(spec))


def sparsectrl_to_original(model: SparseControlNetModel) -> dict[str, torch.Tensor]:
    """The model's tensors in the releases' layout (original motion-module names, positional encodings stored)."""
    return {_original_name(key): tensor.detach().contiguous() for key, tensor in model.state_dict().items()}


def _original_name(key: str) -> str:
    """The releases' name of a ``SparseControlNetModel`` tensor: motion modules get the original names, the rest
    keeps diffusers' (``...motion_modules.0.transformer_blocks.0.attn1.to_q.weight`` ->
    ``...motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight``)."""
    head, marker, rest = key.partition(f".{MOTION}.")
    if not marker:
        return key
    index, _, inner = rest.partition(".")
    inner = f".{inner}"
    for diffusers_part, original_part in _TO_ORIGINAL:
        inner = inner.replace(diffusers_part, original_part)
    return f"{head}.{MOTION}.{index}.temporal_transformer{inner}"


def _layout(state_dict: Mapping[str, torch.Tensor]) -> tuple[Layout, str] | None:
    """The layout and key prefix of the SparseCtrl in ``state_dict``; ``None`` when there is none."""
    for layout, identity in _LAYOUT_KEYS:
        prefix = key_prefix(state_dict, identity, *_COMPANIONS)
        if prefix is not None:
            return layout, prefix
    return None


def _what_it_is(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Why ``state_dict`` is no SparseCtrl, naming what it looks like when Reelgraph knows."""
    if is_motion_module(state_dict):
        return f"this is an AnimateDiff motion module, not an {LABEL}: load it with the AnimateDiff loader"
    try:
        detect_controlnet(state_dict)
    except StateDictError:  # NotAControlNetError included
        known = transformer_family_of(state_dict) or vae_family_of(state_dict) or text_part_of(state_dict)
        if known is not None:
            return f"this is {known.label}, not an {LABEL}"
        sample = ", ".join(list(state_dict)[:3]) or "no tensors"
        return f"not an {LABEL}: no {_ORIGINAL_IDENTITY} or {_DIFFUSERS_IDENTITY} (its first tensors: {sample})"
    return f"this is a Stable Diffusion 1.5 ControlNet without motion modules, not an {LABEL}: load it as a ControlNet"


def _max_frames(tensors: Mapping[str, torch.Tensor]) -> int:
    """The length of the stored positional encoding (before conversion drops it), else AnimateDiff's 32."""
    pe = tensors.get(_ORIGINAL_PE, tensors.get(_DIFFUSERS_PE))
    return int(pe.shape[1]) if pe is not None else DEFAULT_MAX_FRAMES


def _config_from_shapes(tensors: Mapping[str, torch.Tensor], max_frames: int) -> dict[str, Any]:
    """``SparseControlNetModel`` kwargs from the shapes of diffusers-named SparseCtrl tensors."""
    shapes = StateShapes(tensors, "", LABEL)
    encoder = encoder_config(tensors, LABEL, ("CrossAttnDownBlockMotion", "DownBlockMotion"))
    simplified = shapes.has(f"{HINT}.weight")
    condition_channels, concat_mask = _condition_channels(shapes, simplified, encoder["in_channels"])
    return {
        **encoder,
        "conditioning_channels": condition_channels,
        "temporal_transformer_layers_per_block": shapes.count(f"down_blocks.0.{MOTION}.0.transformer_blocks"),
        "conditioning_embedding_out_channels": None if simplified else hint_widths(tensors, LABEL),
        "motion_max_seq_length": max_frames,
        "motion_num_attention_heads": NUM_HEADS,
        "concat_conditioning_mask": concat_mask,
        "use_simplified_condition_embedding": simplified,
    }


def _condition_channels(shapes: StateShapes, simplified: bool, latent_channels: int) -> tuple[int, bool]:
    """The condition's own channels and whether the mask is appended, from the condition encoder's input width:
    a latent's channels (one convolution) or RGB's 3 (the hint encoder), plus one for the mask."""
    if simplified:
        taken, condition, kind = shapes.get(f"{HINT}.weight", 4)[1], latent_channels, "a latent's"
    else:
        taken, condition, kind = shapes.get(f"{HINT}.conv_in.weight", 4)[1], PIXEL_CHANNELS, "RGB's"
    if taken not in (condition, condition + 1):
        raise StateDictError(
            f"the condition encoder takes {taken} channels; an {LABEL}'s takes {kind} {condition} (plus 1 for the mask)"
        )
    return condition, taken == condition + 1


def _positional_encodings(spec: SparseCtrlSpec, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The motion modules' sinusoidal encodings the tensors lack (conversion drops the stored ones), computed as
    diffusers computes them."""
    from diffusers import SparseControlNetModel
    from diffusers.models.embeddings import SinusoidalPositionalEmbedding

    with torch.device("meta"):
        expected = SparseControlNetModel(**spec.config).state_dict()
    return {
        key: SinusoidalPositionalEmbedding(tensor.shape[-1], spec.max_frames).pe
        for key, tensor in expected.items()
        if key.endswith(".pos_embed.pe") and key not in tensors
    }


def _file_namer(spec: SparseCtrlSpec) -> Callable[[str], str]:
    """What the file calls a ``SparseControlNetModel`` tensor (for errors naming the file's tensors)."""
    if spec.layout == "original":
        return lambda key: spec.prefix + _original_name(key)
    return lambda key: spec.prefix + key
