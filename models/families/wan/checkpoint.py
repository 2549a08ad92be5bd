"""Wan 2.1 / 2.2 diffusion models from single files in Wan's original key layout, as the Comfy-Org repackaged
releases ship them (keys maybe prefixed ``model.diffusion_model.``, no config): the variant and the diffusers config
are read from tensor shapes, the keys converted by diffusers' ``convert_wan_transformer_to_diffusers``, and
``wan_transformer_to_original`` writes that layout back (for tiny stand-in files).

What the shapes cannot tell is fixed by the Wan-AI diffusers releases, whose transformer configs all agree on it
(Wan2.1-T2V-1.3B, Wan2.1-T2V-14B, Wan2.1-I2V-14B-480P, Wan2.1-FLF2V-14B-720P, Wan2.2-TI2V-5B, Wan2.2-T2V-A14B,
Wan2.2-I2V-A14B): head dim 128 (the q/k norms span all heads, so the head count is not otherwise recoverable),
eps 1e-6, qk_norm "rms_norm_across_heads" and rope_max_seq_len 1024. Their other values, all read from shapes:

- 2.1 T2V 1.3B: dim 1536 (12 heads), ffn 8960, 30 layers, 16 channels in and out, text_dim 4096, freq_dim 256,
  patch (1, 2, 2), cross_attn_norm true (so are all below);
- 2.1 T2V 14B and 2.2 T2V A14B (both experts): dim 5120 (40 heads), ffn 13824, 40 layers, 16 in and out;
- 2.1 I2V 14B: as T2V 14B with 36 channels in, image_dim 1280 and added_kv_proj_dim 5120 (CLIP vision features);
- 2.1 FLF2V 14B: as I2V with pos_embed_seq_len 514 (two frames of 257 CLIP tokens);
- 2.2 I2V A14B: 36 channels in, no image embedding (image_dim and added_kv_proj_dim null);
- 2.2 TI2V 5B: dim 3072 (24 heads), ffn 14336, 30 layers, 48 channels in and out (the 2.2 VAE's latents).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import torch

from models.errors import StateDictError
from models.families.single_file import MAX_LISTED, StateShapes, build_from_state_dict, key_prefix, unprefixed
from models.scaled_fp8 import MARKER, dequantize_scaled

if TYPE_CHECKING:
    from diffusers import WanTransformer3DModel

__all__ = [
    "ORIGINAL_PREFIX",
    "WanTransformerSpec",
    "detect_wan_transformer",
    "is_wan_transformer",
    "variant_of_config",
    "wan_transformer_from_state_dict",
    "wan_transformer_to_original",
]


ORIGINAL_PREFIX = "model.diffusion_model."
"""The key prefix of the released single files (loading takes any prefix, or none)."""
HEAD_DIM = 128
EPS = 1e-6
ROPE_MAX_SEQ_LEN = 1024
QK_NORM = "rms_norm_across_heads"
TI2V_CHANNELS = 48
CAMERA_UNSHUFFLE = 8  # the camera adapter's pixel unshuffle: its first convolution takes 64 x the camera channels

Variant = Literal["t2v", "i2v", "flf2v", "ti2v", "vace", "camera"]
UNSUPPORTED_VARIANTS: Mapping[str, str] = MappingProxyType({})
"""Variants recognised but not built (none at present; kept so a new kind is refused by name)."""

_IDENTITY = "head.modulation"
_KNOWN_MODULES = frozenset(
    {
        "patch_embedding",
        "text_embedding",
        "time_embedding",
        "time_projection",
        "blocks",
        "head",
        "img_emb",
        "vace_patch_embedding",
        "vace_blocks",
        "control_adapter",
        MARKER,
    }
)
# diffusers 0.42's single-file conversion leaves the first-last-frame position table under its original name.
_EMB_POS = "img_emb.emb_pos"
_POS_EMBED = "condition_embedder.image_embedder.pos_embed"


@dataclass(frozen=True)
class WanTransformerSpec:
    """A Wan diffusion model's variant and the ``WanTransformer3DModel`` kwargs that build it.

    ``variant``: ``"t2v"``; ``"i2v"`` (an image latent is concatenated to the input; 2.1 also has an image
    cross-attention fed by CLIP vision, see ``uses_clip_vision``); ``"flf2v"`` (2.1 first-last-frame: CLIP vision
    features of two frames, with learned positions); ``"ti2v"`` (2.2 5B: 48 channels in and out, the 2.2 VAE's
    latents); ``"vace"`` (a ``WanVACETransformer3DModel``: control hints from ``vace_blocks`` added after
    ``vace_layers``); ``"camera"`` (Fun camera control: a ``WanCameraTransformer3DModel``, whose
    ``control_adapter`` adds camera terms to the patch embeddings).
    """

    variant: Variant
    config: Mapping[str, Any]

    @property
    def uses_clip_vision(self) -> bool:
        """Whether the network takes CLIP vision features (``encoder_hidden_states_image``)."""
        return self.config.get("image_dim") is not None

    def describe(self) -> str:
        """E.g. ``"Wan i2v, dim 5120, 40 layers, in 36 channels"``."""
        dim = self.config["num_attention_heads"] * self.config["attention_head_dim"]
        return (
            f"Wan {self.variant}, dim {dim}, {self.config['num_layers']} layers, "
            f"in {self.config['in_channels']} channels"
        )


def is_wan_transformer(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` is a Wan diffusion model in the original layout (any key prefix); a SkyReels-V2 model
    with its fps embedding is not (``models.families.skyreels``)."""
    prefix = _prefix_of(state_dict)
    return prefix is not None and prefix + "fps_embedding.weight" not in state_dict


def detect_wan_transformer(state_dict: Mapping[str, torch.Tensor]) -> WanTransformerSpec:
    """The variant and diffusers config of a Wan diffusion model, from its tensor shapes alone (meta tensors do).

    Raises ``StateDictError`` for another kind of model, an incomplete or misshapen one, or a Wan variant with
    modules Reelgraph does not know (Animate, S2V).
    """
    prefix = _prefix_of(state_dict)
    if prefix is None:
        raise StateDictError(f"not a Wan diffusion model: no head.modulation tensor ({_looks_like(state_dict)})")
    shapes = StateShapes(state_dict, prefix, "Wan")
    unknown = sorted(shapes.top_level_modules() - _KNOWN_MODULES)
    if unknown:
        raise StateDictError(
            f"a Wan diffusion model with modules Reelgraph does not know ({', '.join(unknown[:MAX_LISTED])}): "
            "a variant such as Animate or S2V, not supported yet"
        )
    num_layers = shapes.count("blocks")
    dim, in_channels, *patch = shapes.get("patch_embedding.weight", 5)
    width = shapes.get(_IDENTITY, 3)[-1]
    if width != dim:
        raise StateDictError(f"head.modulation is {width} wide but patch_embedding.weight makes {dim} channels")
    if dim % HEAD_DIM:
        raise StateDictError(f"the model width {dim} is not a multiple of Wan's head dim {HEAD_DIM}")
    head_rows = shapes.get("head.head.weight", 2)[0]
    if head_rows % math.prod(patch):
        raise StateDictError(f"head.head.weight has {head_rows} rows, not a multiple of the patch size {patch}")
    if not shapes.has("blocks.0.self_attn.norm_q.weight"):
        raise StateDictError("a Wan diffusion model without q/k norms (no blocks.0.self_attn.norm_q.weight)")
    config: dict[str, Any] = {
        "patch_size": tuple(patch),
        "num_attention_heads": dim // HEAD_DIM,
        "attention_head_dim": HEAD_DIM,
        "in_channels": in_channels,
        "out_channels": head_rows // math.prod(patch),
        "text_dim": shapes.get("text_embedding.0.weight", 2)[1],
        "freq_dim": shapes.get("time_embedding.0.weight", 2)[1],
        "ffn_dim": shapes.get("blocks.0.ffn.0.weight", 2)[0],
        "num_layers": num_layers,
        "cross_attn_norm": shapes.has("blocks.0.norm3.weight"),  # original naming: norm3 is the cross-attention's
        "qk_norm": QK_NORM,
        "eps": EPS,
        "image_dim": shapes.get("img_emb.proj.1.weight", 2)[1] if shapes.has("img_emb.proj.1.weight") else None,
        "added_kv_proj_dim": (
            shapes.get("blocks.0.cross_attn.k_img.weight", 2)[1]
            if shapes.has("blocks.0.cross_attn.k_img.weight")
            else None
        ),
        "rope_max_seq_len": ROPE_MAX_SEQ_LEN,
        "pos_embed_seq_len": shapes.get(_EMB_POS, 3)[1] if shapes.has(_EMB_POS) else None,
    }
    variant = _variant(shapes, config)
    if variant == "vace":
        # Which layers take VACE hints is not stored; the releases space them evenly (1.3B: every 2nd of 30,
        # 14B: every 5th of 40).
        hints = shapes.count("vace_blocks")
        config["vace_in_channels"] = shapes.get("vace_patch_embedding.weight", 5)[1]
        config["vace_layers"] = [i * config["num_layers"] // hints for i in range(hints)]
    if variant == "camera":
        config["control_in_channels"] = shapes.get("control_adapter.conv.weight", 4)[1] // CAMERA_UNSHUFFLE**2
        config["residual_blocks"] = shapes.count("control_adapter.residual_blocks")
    return WanTransformerSpec(variant, MappingProxyType(config))


def wan_transformer_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, metadata: Mapping[str, str] | None = None
) -> WanTransformer3DModel:
    """A ``WanTransformer3DModel`` (eval mode) holding a single file's weights in ``dtype``.

    Scaled fp8 weights (``models.scaled_fp8`` layouts) are restored straight to ``dtype``; plain fp8 weights are
    cast. The parameters diffusers keeps in float32 (``_keep_in_fp32_modules``: norms, time embedding,
    modulation) stay float32, as ``from_pretrained`` keeps them.

    Memory: weights are cast one tensor at a time and a tensor already in ``dtype`` is used in place, so from a
    memory-mapped file (``load_state_dict`` of a safetensors file) the peak is about the model in ``dtype`` (the
    file's pages are reclaimable page cache). A state dict held in RAM stays alive while the caller holds it: the
    peak is then its size plus the model's.

    Args:
        state_dict: the file's tensors, original key names, any prefix.
        dtype: the floating-point dtype of the weights.
        metadata: the file's safetensors metadata (one fp8 layout describes its layers there).
    """
    spec = detect_wan_transformer(state_dict)
    if spec.variant in UNSUPPORTED_VARIANTS:
        raise StateDictError(
            f"{spec.describe()}: Wan {UNSUPPORTED_VARIANTS[spec.variant]} models are not supported yet"
        )
    from diffusers import WanTransformer3DModel, WanVACETransformer3DModel

    from models.families.wan.camera import WanCameraTransformer3DModel

    classes = {"vace": WanVACETransformer3DModel, "camera": WanCameraTransformer3DModel}
    model_class = classes.get(spec.variant, WanTransformer3DModel)
    original = unprefixed(dequantize_scaled(state_dict, dtype, metadata), _prefix_of(state_dict) or "")
    converted = _convert_keys(original)  # empties ``original``: only ``converted`` holds the tensors now
    return build_from_state_dict(model_class, spec.config, converted, dtype, spec.describe(), _original_key)


def wan_transformer_to_original(diffusers_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ``WanTransformer3DModel`` state dict in Wan's original key names (no prefix), the same tensors; the exact
    inverse of the conversion ``wan_transformer_from_state_dict`` applies."""
    return {_original_key(key): tensor for key, tensor in diffusers_state_dict.items()}


def _prefix_of(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The prefix of the model's keys (``""``, ``model.diffusion_model.``, ...): the shortest one under which both
    ``head.modulation`` and ``patch_embedding.weight`` exist."""
    return key_prefix(state_dict, _IDENTITY, "patch_embedding.weight")


def _variant(shapes: StateShapes, config: Mapping[str, Any]) -> Variant:
    if shapes.has("vace_patch_embedding.weight"):
        return "vace"
    if shapes.has("control_adapter.conv.weight"):
        return "camera"
    return variant_of_config(config)


def variant_of_config(config: Mapping[str, Any]) -> Variant:
    """The variant a ``WanTransformer3DModel`` config makes: ``flf2v``, ``i2v``, ``ti2v`` or ``t2v`` (VACE and camera
    control are told apart by their own modules, not by this config)."""
    if config["pos_embed_seq_len"] is not None:
        return "flf2v"
    if config["image_dim"] is not None or config["in_channels"] > config["out_channels"]:
        return "i2v"
    if config["in_channels"] == config["out_channels"] == TI2V_CHANNELS:
        return "ti2v"
    return "t2v"


def _looks_like(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A hint at what a state dict that is not a Wan diffusion model is."""
    keys = list(state_dict)
    if any(key.endswith("decoder.middle.0.residual.0.gamma") or key.startswith("decoder.") for key in keys):
        return "it looks like a VAE"
    if any("encoder.block." in key or key.endswith("shared.weight") for key in keys):
        return "it looks like a text encoder"
    if any("vision_model." in key or key.startswith("visual.") for key in keys):
        return "it looks like a CLIP vision model"
    return "is it a VAE or a text encoder?"


def _convert_keys(original: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original key names to diffusers' (``original`` is emptied: diffusers' conversion pops its keys)."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    converted = convert_wan_transformer_to_diffusers(original)
    if _EMB_POS in converted:
        converted[_POS_EMBED] = converted.pop(_EMB_POS)
    return converted


# The inverse of diffusers' renaming. Top-level modules (longest match first):
_TOP_LEVEL = (
    ("condition_embedder.time_embedder.linear_1.", "time_embedding.0."),
    ("condition_embedder.time_embedder.linear_2.", "time_embedding.2."),
    ("condition_embedder.text_embedder.linear_1.", "text_embedding.0."),
    ("condition_embedder.text_embedder.linear_2.", "text_embedding.2."),
    ("condition_embedder.time_proj.", "time_projection.1."),
    ("condition_embedder.image_embedder.norm1.", "img_emb.proj.0."),
    ("condition_embedder.image_embedder.ff.net.0.proj.", "img_emb.proj.1."),
    ("condition_embedder.image_embedder.ff.net.2.", "img_emb.proj.3."),
    ("condition_embedder.image_embedder.norm2.", "img_emb.proj.4."),
    ("proj_out.", "head.head."),
)
_TOP_LEVEL_EXACT = {_POS_EMBED: _EMB_POS, "scale_shift_table": _IDENTITY}
# Inside blocks.N / vace_blocks.N: multi-part names first, then single parts. diffusers numbers the norms in call
# order (norm2 = cross-attention norm); Wan names the cross-attention norm norm3.
_BLOCK_FRAGMENTS = (("to_out.0.", "o."), ("ffn.net.0.proj.", "ffn.0."), ("ffn.net.2.", "ffn.2."))
_BLOCK_PARTS = {
    "attn1": "self_attn",
    "attn2": "cross_attn",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "add_k_proj": "k_img",
    "add_v_proj": "v_img",
    "norm_added_k": "norm_k_img",
    "norm2": "norm3",
    "norm3": "norm2",
    "scale_shift_table": "modulation",
    "proj_in": "before_proj",
    "proj_out": "after_proj",
}
_BLOCK_KEY = re.compile(r"((?:vace_)?blocks\.\d+\.)(.*)")


def _original_key(key: str) -> str:
    """One diffusers key in Wan's original naming."""
    block = _BLOCK_KEY.fullmatch(key)
    if block:
        head, rest = block.groups()
        for diffusers_part, original_part in _BLOCK_FRAGMENTS:
            rest = rest.replace(diffusers_part, original_part)
        return head + ".".join(_BLOCK_PARTS.get(part, part) for part in rest.split("."))
    if key in _TOP_LEVEL_EXACT:
        return _TOP_LEVEL_EXACT[key]
    for diffusers_prefix, original_prefix in _TOP_LEVEL:
        if key.startswith(diffusers_prefix):
            return original_prefix + key[len(diffusers_prefix) :]
    return key
