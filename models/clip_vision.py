"""CLIP vision encoders (ComfyUI's ``CLIP_VISION``) from single files, and the encoding of ``IMAGE`` batches.

``clip_vision_h.safetensors``, the ViT-H/14 image encoder of Wan 2.1 I2V / FLF2V, is in the HF CLIP vision layout:
``vision_model.embeddings.{class_embedding, patch_embedding.weight, position_embedding.weight}``,
``vision_model.pre_layrnorm``, ``vision_model.encoder.layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.fc1,
mlp.fc2, layer_norm2}``, ``vision_model.post_layernorm`` and ``visual_projection.weight``. The open_clip layout
(``visual.conv1``, ``visual.transformer.resblocks.N.attn.in_proj_weight``, ``visual.proj``, ...) is mapped onto it:
its ``in_proj`` is ``torch.nn.MultiheadAttention``'s stacked ``[q; k; v]`` and its ``proj`` is applied as
``x @ proj`` (the transpose of a linear weight). Text towers in a whole-CLIP file are ignored.

Single files carry no config. Shapes give the width, depth, patch size, image size (from the position count),
MLP size and projection size; the head count and activation are not in the tensors (q/k/v are square), so they are
taken from the released models' width (``KNOWN_WIDTHS``), with ViT-H's head dim of 80 for other widths.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModel, CLIPVisionModelWithProjection

from models.errors import StateDictError
from models.families.single_file import key_prefix
from models.state_dict_checks import check_tensor_shapes

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "KNOWN_WIDTHS",
    "ClipVisionOutput",
    "clip_vision_from_state_dict",
    "clip_vision_prefix",
    "detect_clip_vision_config",
    "encode_images",
    "is_clip_vision",
    "preprocess_images",
]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Width -> (heads, activation) of the released CLIP vision towers.
KNOWN_WIDTHS = {
    768: (12, "quick_gelu"),  # OpenAI ViT-B/16 and B/32: head dim 64
    1024: (16, "quick_gelu"),  # OpenAI ViT-L/14 and L/14-336 (clip_vision_vitl): head dim 64
    1280: (16, "gelu"),  # LAION ViT-H/14 (clip_vision_h: Wan, SVD): head dim 80
    1664: (16, "gelu"),  # LAION ViT-bigG/14 (clip_vision_g): head dim 104
}
DEFAULT_HEAD_DIM = 80  # other widths (tiny stand-ins: 160 = 2 heads of 80) use ViT-H's head dim and GELU
DEFAULT_ACTIVATION = "gelu"
LAYER_NORM_EPS = 1e-5
Crop = Literal["center", "none"]

_HF = "vision_model."
_PATCH = "vision_model.embeddings.patch_embedding.weight"
_POSITIONS = "vision_model.embeddings.position_embedding.weight"
_PROJECTION = "visual_projection.weight"
_LAYER_KEY = re.compile(r"^vision_model\.encoder\.layers\.(\d+)\.")
# Tensors of a whole-CLIP file that are no part of the vision tower (HF layout), and a buffer some files keep.
_HF_IGNORED_PREFIXES = ("text_model.", "text_projection.")
_HF_IGNORED = frozenset({"logit_scale", "vision_model.embeddings.position_ids"})
_OPEN_CLIP_PATCH = "visual.conv1.weight"
_OPEN_CLIP_BLOCK = re.compile(r"^visual\.transformer\.resblocks\.(\d+)\.(.+)$")
_OPEN_CLIP_NAMES = {
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.positional_embedding": _POSITIONS,
    _OPEN_CLIP_PATCH: _PATCH,
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
}
_OPEN_CLIP_BLOCK_NAMES = {
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
}


@dataclass(frozen=True)
class ClipVisionOutput:
    """What ``CLIPVisionEncode`` hands on: the last layer's tokens, the penultimate layer's tokens (what Wan and
    diffusers' ``WanImageToVideoPipeline.encode_image`` use), and the projected image embeddings (None when the
    model has no projection)."""

    last_hidden_state: torch.Tensor
    penultimate_hidden_states: torch.Tensor
    image_embeds: torch.Tensor | None

    def to(self, device: torch.device | str, dtype: torch.dtype) -> ClipVisionOutput:
        """A copy with every tensor on ``device`` in ``dtype``."""
        return ClipVisionOutput(
            self.last_hidden_state.to(device, dtype),
            self.penultimate_hidden_states.to(device, dtype),
            None if self.image_embeds is None else self.image_embeds.to(device, dtype),
        )


def is_clip_vision(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the tensors hold a CLIP vision tower, in HF or open_clip layout."""
    return _layout(state_dict) is not None


def clip_vision_prefix(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The key prefix a CLIP vision tower stands under in a combined file (``conditioner.embedders.0.open_clip.model.``
    in ``svd.safetensors``), in either layout; ``None`` when the file holds none."""
    for identity, companion in (
        (_PATCH, "vision_model.post_layernorm.weight"),
        (_OPEN_CLIP_PATCH, "visual.class_embedding"),
    ):
        prefix = key_prefix(state_dict, identity, companion)
        if prefix is not None:
            return prefix
    return None


def detect_clip_vision_config(state_dict: Mapping[str, torch.Tensor]) -> CLIPVisionConfig:
    """The ``CLIPVisionConfig`` of a vision tower, read from its shapes (meta tensors will do).

    Width and patch size from the patch embedding, image size from the position count (``(image / patch)^2 + 1``),
    depth from the layer count, MLP size from ``fc1``, projection size from ``visual_projection``; heads and
    activation from ``KNOWN_WIDTHS`` (ViT-H/14: 1280 = 16 heads of 80; ViT-L/14: 1024 = 16 of 64), other widths
    ``width / 80`` heads. Raises ``StateDictError`` for tensors that are no CLIP vision tower.
    """
    return _config_of(_to_hf_layout(state_dict))


def clip_vision_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype
) -> CLIPVisionModelWithProjection | CLIPVisionModel:
    """A CLIP vision model in eval mode holding the file's tensors in ``dtype``: ``CLIPVisionModelWithProjection``,
    or ``CLIPVisionModel`` when the file has no ``visual_projection``.

    Built on the meta device and given the tensors as they are (``assign``). Raises ``StateDictError`` for tensors
    that are no CLIP vision tower, or keys missing, unexpected or misshapen.
    """
    tensors = _to_hf_layout(state_dict)
    config = _config_of(tensors)
    with_projection = _PROJECTION in tensors
    if not with_projection:  # CLIPVisionModel's own keys have no "vision_model." prefix
        tensors = {key.removeprefix(_HF): tensor for key, tensor in tensors.items()}
    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(config) if with_projection else CLIPVisionModel(config)
    expected = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    check_tensor_shapes(tensors, expected, "CLIP vision model")
    model.load_state_dict({key: tensor.to(dtype) for key, tensor in tensors.items()}, strict=True, assign=True)
    embeddings = model.vision_model.embeddings if with_projection else model.embeddings
    embeddings.position_ids = torch.arange(embeddings.num_positions).expand((1, -1))  # a buffer, not in files
    return model.requires_grad_(False).eval()


def preprocess_images(images: torch.Tensor, image_size: int, crop: Crop = "center") -> torch.Tensor:
    """``IMAGE`` ``[B, H, W, 3]`` in 0..1 to normalized pixel values ``[B, 3, image_size, image_size]`` (float32).

    ``center``: the shortest side is resized to ``image_size`` (the other to ``int(size * long / short)``, as
    ``CLIPImageProcessor`` does), then the middle square is cut out; ``none``: the whole image is resized to the
    square. Resizing is bicubic with antialiasing (as PIL's, which ``CLIPImageProcessor`` uses), clamped to 0..1.
    """
    if crop not in ("center", "none"):
        raise ValueError(f"crop must be 'center' or 'none', not {crop!r}")
    if images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be [batch, height, width, 3], got {list(images.shape)}")
    pixels = images.to(torch.float32).movedim(-1, 1)
    height, width = pixels.shape[-2:]
    if crop == "center":
        short, long = min(height, width), max(height, width)
        resized_long = int(image_size * long / short)
        size = (image_size, resized_long) if height <= width else (resized_long, image_size)
    else:
        size = (image_size, image_size)
    if size != (height, width):
        pixels = F.interpolate(pixels, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    top = (size[0] - image_size) // 2
    left = (size[1] - image_size) // 2
    pixels = pixels[:, :, top : top + image_size, left : left + image_size]
    mean = torch.tensor(CLIP_MEAN, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=pixels.device).view(1, 3, 1, 1)
    return (pixels - mean) / std


def encode_images(
    model: CLIPVisionModelWithProjection | CLIPVisionModel, images: torch.Tensor, crop: Crop = "center"
) -> ClipVisionOutput:
    """Encode an ``IMAGE`` batch ``[B, H, W, 3]`` (0..1) with ``model``: preprocess on the model's device, run with
    all hidden states. ``crop`` is ``CLIPVisionEncode``'s: ``center`` or ``none`` (see ``preprocess_images``)."""
    parameter = next(model.parameters())
    pixels = preprocess_images(images.to(parameter.device), model.config.image_size, crop)
    with torch.no_grad():
        output = model(pixel_values=pixels.to(parameter.dtype), output_hidden_states=True)
    return ClipVisionOutput(
        last_hidden_state=output.last_hidden_state,
        penultimate_hidden_states=output.hidden_states[-2],
        image_embeds=getattr(output, "image_embeds", None),
    )


def _layout(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    if _PATCH in state_dict and any(_LAYER_KEY.match(key) for key in state_dict):
        return "hf"
    if _OPEN_CLIP_PATCH in state_dict and any(_OPEN_CLIP_BLOCK.match(key) for key in state_dict):
        return "open_clip"
    return None


def _to_hf_layout(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The vision tower's tensors under HF keys (open_clip mapped, text towers and buffers dropped)."""
    layout = _layout(state_dict)
    if layout == "hf":
        return {
            key: tensor
            for key, tensor in state_dict.items()
            if key not in _HF_IGNORED and not key.startswith(_HF_IGNORED_PREFIXES)
        }
    if layout == "open_clip":
        return _from_open_clip(state_dict)
    sample = ", ".join(sorted(state_dict)[:3]) or "none"
    raise StateDictError(
        f"not a CLIP vision model: no {_PATCH} with vision_model.encoder.layers.N (HF layout) nor "
        f"{_OPEN_CLIP_PATCH} with visual.transformer.resblocks.N (open_clip layout); keys such as {sample}"
    )


def _from_open_clip(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip's ``visual.*`` tensors under HF keys; unknown ``visual.*`` tensors keep their names (and are then
    refused as unexpected), tensors outside ``visual.`` (the text tower) are dropped."""
    result: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if not key.startswith("visual."):
            continue
        if key in _OPEN_CLIP_NAMES:
            result[_OPEN_CLIP_NAMES[key]] = tensor
        elif key == "visual.proj":
            result[_PROJECTION] = tensor.t().contiguous()
        elif (match := _OPEN_CLIP_BLOCK.match(key)) is None:
            result[key] = tensor
        else:
            prefix = f"vision_model.encoder.layers.{match.group(1)}."
            name = match.group(2)
            if name in ("attn.in_proj_weight", "attn.in_proj_bias"):
                if tensor.shape[0] % 3:
                    raise StateDictError(f"{key} has {tensor.shape[0]} rows, not three equal parts (q, k, v)")
                kind = name.rsplit("_", 1)[1]  # "weight" or "bias"
                for part, chunk in zip(("q", "k", "v"), tensor.chunk(3, dim=0), strict=True):
                    result[f"{prefix}self_attn.{part}_proj.{kind}"] = chunk
            else:
                result[prefix + _OPEN_CLIP_BLOCK_NAMES.get(name, name)] = tensor
    return result


def _config_of(tensors: Mapping[str, torch.Tensor]) -> CLIPVisionConfig:
    hidden, channels, patch, patch_width = _shape(tensors, _PATCH, 4)
    (positions, position_width) = _shape(tensors, _POSITIONS, 2)
    grid = math.isqrt(max(positions - 1, 0))
    if patch != patch_width or position_width != hidden or grid * grid != positions - 1 or grid == 0:
        raise StateDictError(
            f"CLIP vision shapes do not agree: patch embedding {hidden}x{channels}x{patch}x{patch_width}, "
            f"position embedding {positions}x{position_width} (expected a square grid plus one class position)"
        )
    layers = sorted({int(match.group(1)) for key in tensors if (match := _LAYER_KEY.match(key))})
    if layers != list(range(len(layers))):
        raise StateDictError(f"CLIP vision layers are not numbered 0..{layers[-1]}")
    intermediate, _ = _shape(tensors, "vision_model.encoder.layers.0.mlp.fc1.weight", 2)
    heads, activation = KNOWN_WIDTHS.get(hidden, (hidden // DEFAULT_HEAD_DIM, DEFAULT_ACTIVATION))
    if heads == 0 or hidden % heads:
        raise StateDictError(f"CLIP vision width {hidden} is not a known model's and not a multiple of 80")
    options = {}
    if _PROJECTION in tensors:
        options["projection_dim"] = _shape(tensors, _PROJECTION, 2)[0]
    return CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=len(layers),
        num_attention_heads=heads,
        num_channels=channels,
        image_size=grid * patch,
        patch_size=patch,
        hidden_act=activation,
        layer_norm_eps=LAYER_NORM_EPS,
        **options,
    )


def _shape(tensors: Mapping[str, torch.Tensor], key: str, dims: int) -> tuple[int, ...]:
    if key not in tensors:
        raise StateDictError(f"CLIP vision model without {key}; is the file truncated?")
    shape = tuple(tensors[key].shape)
    if len(shape) != dims:
        raise StateDictError(f"CLIP vision {key} has shape {shape}, expected {dims} dimensions")
    return shape
