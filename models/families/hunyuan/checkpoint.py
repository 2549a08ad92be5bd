"""HunyuanVideo diffusion models from single files in Tencent's original key layout, as the Comfy-Org repackaged
releases ship them (``hunyuan_video_t2v_720p_bf16``, ``hunyuan_video_image_to_video_720p_bf16``,
``hunyuan_video_v2_replace_image_to_video_720p_bf16``; keys maybe prefixed ``model.diffusion_model.``, no config):
the variant and the diffusers config are read from tensor shapes, the keys converted by diffusers'
``convert_hunyuan_video_transformer_to_diffusers`` (after splitting the single-stream blocks' fused ``linear1``
here: diffusers' function assumes the released width 3072), and ``hunyuan_transformer_to_original`` writes that
layout back (for tiny stand-in files).

Read from shapes: width, head dim (the q/k norms span one head), layer counts (double, single, text refiner),
MLP ratio, patch sizes, channels in and out, text and pooled widths, and whether a guidance embedding exists. Fixed
by the releases (every HunyuanVideo transformer config agrees): qk_norm "rms_norm", rope_theta 256 and rope axes
(16, 56, 56), which need head dim 128.

Variants, by input channels: ``in == out`` (16) is text-to-video or the "v2 (replace)" image-to-video model: their
files hold the same tensors and cannot be told apart, so both are built with diffusers' token-replace blocks
(``image_condition_type="token_replace"``), which give the first latent frame its own modulation; the adapter makes
that modulation the step's own unless the conditioning asks for a guiding frame, so text-to-video computes exactly
what the plain blocks compute. ``in == 2 * out + 1`` (33) is the "v1 (concat)" image-to-video model
(``image_condition_type="latent_concat"``). Released: width 3072 (24 heads), 20 double and 40 single blocks,
2 refiner blocks, MLP ratio 4, patch (1, 2, 2), text width 4096 (Llama 3 8B), pooled width 768 (CLIP-L).
"""

from __future__ import annotations

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
    from diffusers import HunyuanVideoTransformer3DModel

__all__ = [
    "ORIGINAL_PREFIX",
    "HunyuanTransformerSpec",
    "detect_hunyuan_transformer",
    "hunyuan_transformer_from_state_dict",
    "hunyuan_transformer_to_original",
    "is_hunyuan_transformer",
    "variant_of_config",
]


ORIGINAL_PREFIX = "model.diffusion_model."
"""The key prefix of the released single files (loading takes any prefix, or none)."""
HEAD_DIM = 128
QK_NORM = "rms_norm"
ROPE_THETA = 256.0
ROPE_AXES_DIM = (16, 56, 56)
TOKEN_REPLACE = "token_replace"
LATENT_CONCAT = "latent_concat"

Variant = Literal["t2v", "i2v_concat", "i2v_replace"]

_IDENTITY = "txt_in.individual_token_refiner.blocks.0.adaLN_modulation.1.bias"
_KNOWN_MODULES = frozenset(
    {"img_in", "txt_in", "time_in", "guidance_in", "vector_in", "double_blocks", "single_blocks", "final_layer", MARKER}
)


@dataclass(frozen=True)
class HunyuanTransformerSpec:
    """A HunyuanVideo diffusion model's variant and the ``HunyuanVideoTransformer3DModel`` kwargs that build it.

    ``variant``: ``"t2v"`` (16 channels in; a single file of the "v2 (replace)" image-to-video model is this too,
    built with token-replace blocks), ``"i2v_replace"`` (a diffusers folder whose config says ``token_replace``),
    ``"i2v_concat"`` (33 channels in: latent, image latent, mask).
    """

    variant: Variant
    config: Mapping[str, Any]

    @property
    def token_replace(self) -> bool:
        """Whether the network can give the first latent frame timestep 0 (a guiding frame)."""
        return self.config.get("image_condition_type") == TOKEN_REPLACE

    def describe(self) -> str:
        """E.g. ``"HunyuanVideo i2v_concat, width 3072, 20+40 layers, in 33 channels"``."""
        config = self.config
        width = config["num_attention_heads"] * config["attention_head_dim"]
        variant = "t2v / v2 replace i2v" if self.variant == "t2v" and self.token_replace else self.variant
        return (
            f"HunyuanVideo {variant}, width {width}, {config['num_layers']}+{config['num_single_layers']} layers, "
            f"in {config['in_channels']} channels"
        )


def is_hunyuan_transformer(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` is a HunyuanVideo diffusion model in the original layout (any key prefix)."""
    return _prefix_of(state_dict) is not None


def detect_hunyuan_transformer(state_dict: Mapping[str, torch.Tensor]) -> HunyuanTransformerSpec:
    """The variant and diffusers config of a HunyuanVideo diffusion model, from its tensor shapes alone (meta
    tensors do). Raises ``StateDictError`` for another kind of model, an incomplete or misshapen one, or a variant
    Reelgraph does not build (SkyReels image-to-video, HunyuanVideo 1.5)."""
    prefix = _prefix_of(state_dict)
    if prefix is None:
        raise StateDictError(f"not a HunyuanVideo diffusion model: no {_IDENTITY} tensor ({_looks_like(state_dict)})")
    shapes = StateShapes(state_dict, prefix, "HunyuanVideo")
    unknown = sorted(shapes.top_level_modules() - _KNOWN_MODULES)
    if unknown:
        raise StateDictError(
            f"a HunyuanVideo-like diffusion model with modules Reelgraph does not know "
            f"({', '.join(unknown[:MAX_LISTED])}): a later version such as HunyuanVideo 1.5, not supported"
        )
    width, in_channels, patch_t, patch_h, patch_w = shapes.get("img_in.proj.weight", 5)
    if patch_h != patch_w:
        raise StateDictError(f"img_in.proj.weight has a {patch_h}x{patch_w} patch; HunyuanVideo's is square")
    head_dim = shapes.get("double_blocks.0.img_attn_q_norm.weight", 1)[0]
    if head_dim != HEAD_DIM or width % head_dim:
        raise StateDictError(
            f"head dim {head_dim} at width {width}: HunyuanVideo's rope axes {ROPE_AXES_DIM} need head dim {HEAD_DIM}"
        )
    mlp_dim = shapes.get("double_blocks.0.img_mlp.fc1.weight", 2)[0]
    out_rows = shapes.get("final_layer.linear.weight", 2)[0]
    patch_volume = patch_t * patch_h * patch_w
    if out_rows % patch_volume:
        raise StateDictError(f"final_layer.linear.weight has {out_rows} rows, not a multiple of the patch volume")
    config: dict[str, Any] = {
        "in_channels": in_channels,
        "out_channels": out_rows // patch_volume,
        "num_attention_heads": width // head_dim,
        "attention_head_dim": head_dim,
        "num_layers": shapes.count("double_blocks"),
        "num_single_layers": shapes.count("single_blocks"),
        "num_refiner_layers": shapes.count("txt_in.individual_token_refiner.blocks"),
        "mlp_ratio": mlp_dim / width,
        "patch_size": patch_h,
        "patch_size_t": patch_t,
        "qk_norm": QK_NORM,
        "guidance_embeds": shapes.has("guidance_in.mlp.0.weight"),
        "text_embed_dim": shapes.get("txt_in.input_embedder.weight", 2)[1],
        "pooled_projection_dim": shapes.get("vector_in.in_layer.weight", 2)[1],
        "rope_theta": ROPE_THETA,
        "rope_axes_dim": ROPE_AXES_DIM,
        "image_condition_type": _image_condition_type(in_channels, out_rows // patch_volume),
    }
    single_rows = shapes.get("single_blocks.0.linear1.weight", 2)[0]
    if single_rows != 3 * width + mlp_dim:
        raise StateDictError(
            f"single_blocks.0.linear1.weight has {single_rows} rows; width {width} and MLP {mlp_dim} make "
            f"{3 * width + mlp_dim}"
        )
    return HunyuanTransformerSpec(variant_of_config(config, from_single_file=True), MappingProxyType(config))


def hunyuan_transformer_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, metadata: Mapping[str, str] | None = None
) -> HunyuanVideoTransformer3DModel:
    """A ``HunyuanVideoTransformer3DModel`` (eval mode) holding a single file's weights in ``dtype``; scaled fp8
    weights are restored, other keys (a combined checkpoint's) ignored. Memory as Wan's
    ``wan_transformer_from_state_dict``: about the model in ``dtype`` from a memory-mapped file."""
    spec = detect_hunyuan_transformer(state_dict)
    from diffusers import HunyuanVideoTransformer3DModel

    prefix = _prefix_of(state_dict) or ""
    original = unprefixed(dequantize_scaled(state_dict, dtype, metadata), prefix)
    converted = _convert_keys(original, width=spec.config["num_attention_heads"] * HEAD_DIM)
    return build_from_state_dict(
        HunyuanVideoTransformer3DModel, spec.config, converted, dtype, spec.describe(), _original_key
    )


def hunyuan_transformer_to_original(diffusers_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ``HunyuanVideoTransformer3DModel`` state dict in Tencent's original key names (no prefix): q/k/v fused,
    the final modulation's halves swapped back; the exact inverse of the conversion loading applies."""
    fused: dict[str, dict[str, torch.Tensor]] = {}
    original: dict[str, torch.Tensor] = {}
    for key, tensor in diffusers_state_dict.items():
        target = _original_key(key)
        part = _FUSED_PART.get(_fused_suffix(key))
        if part is not None and target != key:
            fused.setdefault(target, {})[part] = tensor
        elif key.startswith("norm_out.linear."):
            scale, shift = tensor.chunk(2, dim=0)
            original[target] = torch.cat([shift, scale], dim=0)
        else:
            original[target] = tensor
    for target, parts in fused.items():
        order = _SINGLE_ORDER if "mlp" in parts else _QKV_ORDER
        missing = [name for name in order if name not in parts]
        if missing:
            raise StateDictError(f"{target}: the diffusers state dict lacks its {', '.join(missing)} part")
        original[target] = torch.cat([parts[name] for name in order], dim=0)
    return original


def variant_of_config(config: Mapping[str, Any], from_single_file: bool = False) -> Variant:
    """The variant a ``HunyuanVideoTransformer3DModel`` config makes. A single file's 16-channel model is
    ``"t2v"`` whatever its blocks (the v2 image-to-video release is indistinguishable)."""
    condition = config.get("image_condition_type")
    if condition == LATENT_CONCAT:
        return "i2v_concat"
    if condition == TOKEN_REPLACE and not from_single_file:
        return "i2v_replace"
    return "t2v"


def _image_condition_type(in_channels: int, out_channels: int) -> str:
    if in_channels == out_channels:
        return TOKEN_REPLACE
    if in_channels == 2 * out_channels + 1:
        return LATENT_CONCAT
    raise StateDictError(
        f"a HunyuanVideo diffusion model with {in_channels} input and {out_channels} output channels: only "
        f"text-to-video ({out_channels} in) and the image-to-video releases ({2 * out_channels + 1} in: latent, "
        "image latent, mask) are supported (SkyReels image-to-video is not)"
    )


def _prefix_of(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The shortest prefix under which both the text refiner's first modulation and ``img_in`` exist."""
    return key_prefix(state_dict, _IDENTITY, "img_in.proj.weight")


def _looks_like(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A hint at what a state dict that is not a HunyuanVideo diffusion model is."""
    keys = list(state_dict)
    if any(key.startswith(("decoder.", "encoder.", "vae.")) for key in keys):
        return "it looks like a VAE"
    if any("layers.0.self_attn" in key or "text_model." in key for key in keys):
        return "it looks like a text encoder"
    if any(key.endswith("head.modulation") for key in keys):
        return "it looks like a Wan diffusion model"
    return "is it a VAE or a text encoder?"


def _convert_keys(original: dict[str, torch.Tensor], width: int) -> dict[str, torch.Tensor]:
    """Original key names to diffusers' (``original`` is emptied). The single-stream blocks' fused ``linear1``
    (q, k, v, MLP in) is split here at ``width``; diffusers' conversion does the rest."""
    from diffusers.loaders.single_file_utils import convert_hunyuan_video_transformer_to_diffusers

    for key in list(original):
        match = _SINGLE_LINEAR1.fullmatch(key)
        if match is None:
            continue
        block, kind = match.groups()
        tensor = original.pop(key)
        parts = torch.split(tensor, [width, width, width, tensor.shape[0] - 3 * width], dim=0)
        for name, part in zip(("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), parts, strict=True):
            original[f"single_transformer_blocks.{block}.{name}.{kind}"] = part
    return convert_hunyuan_video_transformer_to_diffusers(original)


_SINGLE_LINEAR1 = re.compile(r"single_blocks\.(\d+)\.linear1\.(weight|bias)")

# The inverse of the conversion, for names that are not fused. Inside the text refiner's blocks:
_REFINER_BLOCK = (
    ("attn.to_out.0.", "self_attn_proj."),
    ("ff.net.0.proj.", "mlp.fc1."),
    ("ff.net.2.", "mlp.fc2."),
    ("norm_out.linear.", "adaLN_modulation.1."),
)
_REFINER_TOP = (
    ("context_embedder.time_text_embed.timestep_embedder.linear_1.", "txt_in.t_embedder.mlp.0."),
    ("context_embedder.time_text_embed.timestep_embedder.linear_2.", "txt_in.t_embedder.mlp.2."),
    ("context_embedder.time_text_embed.text_embedder.", "txt_in.c_embedder."),
    ("context_embedder.proj_in.", "txt_in.input_embedder."),
)
_DOUBLE_BLOCK = (
    ("norm1.linear.", "img_mod.linear."),
    ("norm1_context.linear.", "txt_mod.linear."),
    ("attn.norm_q.", "img_attn_q_norm."),
    ("attn.norm_k.", "img_attn_k_norm."),
    ("attn.norm_added_q.", "txt_attn_q_norm."),
    ("attn.norm_added_k.", "txt_attn_k_norm."),
    ("attn.to_out.0.", "img_attn_proj."),
    ("attn.to_add_out.", "txt_attn_proj."),
    ("ff.net.0.proj.", "img_mlp.fc1."),
    ("ff.net.2.", "img_mlp.fc2."),
    ("ff_context.net.0.proj.", "txt_mlp.fc1."),
    ("ff_context.net.2.", "txt_mlp.fc2."),
)
_SINGLE_BLOCK = (
    ("attn.norm_q.", "q_norm."),
    ("attn.norm_k.", "k_norm."),
    ("proj_out.", "linear2."),
    ("norm.linear.", "modulation.linear."),
)
_TOP = (
    ("x_embedder.", "img_in."),
    ("time_text_embed.timestep_embedder.linear_1.", "time_in.mlp.0."),
    ("time_text_embed.timestep_embedder.linear_2.", "time_in.mlp.2."),
    ("time_text_embed.guidance_embedder.linear_1.", "guidance_in.mlp.0."),
    ("time_text_embed.guidance_embedder.linear_2.", "guidance_in.mlp.2."),
    ("time_text_embed.text_embedder.linear_1.", "vector_in.in_layer."),
    ("time_text_embed.text_embedder.linear_2.", "vector_in.out_layer."),
    ("norm_out.linear.", "final_layer.adaLN_modulation.1."),
    ("proj_out.", "final_layer.linear."),
)
# Fused tensors: the diffusers parts, in the order the original concatenates them.
_QKV_ORDER = ("q", "k", "v")
_SINGLE_ORDER = ("q", "k", "v", "mlp")
_FUSED_PART = MappingProxyType(
    {
        "attn.to_q": "q",
        "attn.to_k": "k",
        "attn.to_v": "v",
        "attn.add_q_proj": "q",
        "attn.add_k_proj": "k",
        "attn.add_v_proj": "v",
        "proj_mlp": "mlp",
    }
)
_FUSED_TARGET = MappingProxyType(
    {
        ("refiner", "attn.to_"): "self_attn_qkv",
        ("double", "attn.to_"): "img_attn_qkv",
        ("double", "attn.add_"): "txt_attn_qkv",
        ("single", "attn.to_"): "linear1",
        ("single", "proj_mlp"): "linear1",
    }
)
_REFINER_KEY = re.compile(r"context_embedder\.token_refiner\.refiner_blocks\.(\d+)\.(.*)")
_DOUBLE_KEY = re.compile(r"transformer_blocks\.(\d+)\.(.*)")
_SINGLE_KEY = re.compile(r"single_transformer_blocks\.(\d+)\.(.*)")


def _fused_suffix(key: str) -> str:
    """``attn.to_q`` for ``....attn.to_q.weight`` (the module path's last parts), else ``""``."""
    stem = key.rsplit(".", 1)[0]
    for suffix in _FUSED_PART:
        if stem.endswith("." + suffix):
            return suffix
    return ""


def _original_key(key: str) -> str:
    """One diffusers key in the original naming (fused q/k/v parts all map to their fused tensor's name)."""
    for kind, pattern, head, pairs in (
        ("refiner", _REFINER_KEY, "txt_in.individual_token_refiner.blocks.", _REFINER_BLOCK),
        ("single", _SINGLE_KEY, "single_blocks.", _SINGLE_BLOCK),
        ("double", _DOUBLE_KEY, "double_blocks.", _DOUBLE_BLOCK),
    ):
        match = pattern.fullmatch(key)
        if match:
            index, rest = match.groups()
            return f"{head}{index}.{_block_rest(kind, rest, pairs)}"
    for source, target in _REFINER_TOP + _TOP:
        if key.startswith(source):
            return target + key[len(source) :]
    return key


def _block_rest(kind: str, rest: str, pairs: tuple[tuple[str, str], ...]) -> str:
    suffix = _fused_suffix("." + rest)
    if suffix:
        family = next(name for name in ("proj_mlp", "attn.to_", "attn.add_") if suffix.startswith(name))
        return f"{_FUSED_TARGET[(kind, family)]}.{rest.rsplit('.', 1)[1]}"
    for source, target in pairs:
        if rest.startswith(source):
            return target + rest[len(source) :]
    return rest
