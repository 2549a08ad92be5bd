"""CLIP text encoders (HunyuanVideo's CLIP-L) from single files in the HF ``CLIPTextModel`` layout, as Comfy-Org
releases them.

``clip_l.safetensors`` holds the text tower of openai/clip-vit-large-patch14:
``text_model.embeddings.{token_embedding, position_embedding}.weight`` (maybe ``text_model.embeddings.position_ids``),
per layer N ``text_model.encoder.layers.N.self_attn.{q,k,v,out}_proj.{weight,bias}``,
``text_model.encoder.layers.N.{layer_norm1, mlp.fc1, mlp.fc2, layer_norm2}.{weight,bias}``,
``text_model.final_layer_norm.{weight,bias}``, and maybe ``text_projection.weight`` and ``logit_scale``.
HunyuanVideoPipeline's ``text_encoder_2`` is a ``CLIPTextModel`` (its ``pooler_output``, before any projection), so
the projection and logit scale are ignored.

Single files carry no config. Shapes give the width, depth, vocabulary, positions and MLP size; the head count is
``width / 64`` (OpenAI CLIP's head width: ViT-L/14's 768 = 12 heads), or ``width / 16`` for widths that are no
multiple of 64 (tiny stand-ins: 32 = 2 heads of 16); the activation is OpenAI CLIP's quick GELU. Pooling takes the
highest token id of each sequence (the end-of-text token), as openai/clip-vit-large-patch14's config asks
(``eos_token_id`` 2, the legacy marker). Files with a vision tower (``models.clip_vision``) and the wider OpenCLIP
text towers (ViT-H's 1024, ViT-bigG's 1280: ``clip_g``) are not CLIP-L text encoders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from transformers import CLIPTextConfig, CLIPTextModel

from models.errors import StateDictError
from models.state_dict_checks import check_tensor_shapes

__all__ = [
    "CLIP_L_TEXT",
    "clip_text_from_state_dict",
    "clip_text_to_single_file",
    "detect_clip_text_config",
    "is_clip_l_text",
]

# openai/clip-vit-large-patch14's text tower, as detect_clip_text_config reads it from the released file.
CLIP_L_TEXT = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
}
HEAD_DIM = 64  # OpenAI CLIP's head width
TINY_HEAD_DIM = 16  # for widths that are no multiple of HEAD_DIM (tiny stand-ins)
HIDDEN_ACT = "quick_gelu"
LAYER_NORM_EPS = 1e-5
# openai/clip-vit-large-patch14's token ids in its config: eos 2 selects argmax pooling (the end-of-text token is the
# vocabulary's highest id).
BOS_TOKEN_ID, EOS_TOKEN_ID, PAD_TOKEN_ID = 0, 2, 1
# Text towers of the same layout that are not CLIP-L, by width.
OTHER_WIDTHS = {1024: "an OpenCLIP ViT-H text encoder (SD 2)", 1280: "an OpenCLIP ViT-bigG text encoder (clip_g)"}

PREFIX = "text_model."
TOKEN_EMBEDDING = "text_model.embeddings.token_embedding.weight"
POSITION_EMBEDDING = "text_model.embeddings.position_embedding.weight"
PROJECTION = "text_projection.weight"
IGNORED = frozenset({"text_model.embeddings.position_ids", PROJECTION, "logit_scale"})
_LAYER_KEY = re.compile(r"^text_model\.encoder\.layers\.(\d+)\.")
_VISION_PREFIXES = ("vision_model.", "visual.", "visual_projection.")


def is_clip_l_text(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the tensors are a CLIP text tower in HF layout, alone (no vision tower: those are
    ``models.clip_vision`` files) and not one of the wider OpenCLIP text towers (``OTHER_WIDTHS``)."""
    if TOKEN_EMBEDDING not in state_dict or POSITION_EMBEDDING not in state_dict:
        return False
    if not any(_LAYER_KEY.match(key) for key in state_dict):
        return False
    if any(key.startswith(_VISION_PREFIXES) for key in state_dict):
        return False
    shape = tuple(state_dict[TOKEN_EMBEDDING].shape)
    return len(shape) == 2 and shape[1] not in OTHER_WIDTHS


def detect_clip_text_config(state_dict: Mapping[str, torch.Tensor]) -> CLIPTextConfig:
    """The ``CLIPTextConfig`` of a text tower, read from its shapes (meta tensors will do).

    Vocabulary and width from the token embedding, positions from the position embedding, depth from the layer
    count, MLP size from ``fc1``, projection size from ``text_projection`` (when present); heads as the module
    docstring says. Raises ``StateDictError`` for tensors that are no CLIP-L-style text tower.
    """
    _check_clip_text(state_dict)
    layers = sorted({int(match.group(1)) for key in state_dict if (match := _LAYER_KEY.match(key))})
    if layers != list(range(len(layers))):
        missing = sorted(set(range(layers[-1] + 1)) - set(layers))
        raise StateDictError(f"CLIP text layers are not numbered 0..{layers[-1]}: layer(s) {missing} missing")
    vocab_size, width = _shape(state_dict, TOKEN_EMBEDDING, 2)
    positions, position_width = _shape(state_dict, POSITION_EMBEDDING, 2)
    intermediate, fc1_in = _shape(state_dict, f"{PREFIX}encoder.layers.0.mlp.fc1.weight", 2)
    if position_width != width or fc1_in != width:
        raise StateDictError(
            f"CLIP text shapes do not agree: token embedding width {width}, position embedding width "
            f"{position_width}, fc1 {intermediate}x{fc1_in}"
        )
    head_dim = HEAD_DIM if width % HEAD_DIM == 0 else TINY_HEAD_DIM
    if width % head_dim:
        raise StateDictError(f"CLIP text width {width} is not a whole number of heads of {HEAD_DIM} or {TINY_HEAD_DIM}")
    projection = _shape(state_dict, PROJECTION, 2)[0] if PROJECTION in state_dict else width
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=intermediate,
        projection_dim=projection,
        num_hidden_layers=len(layers),
        num_attention_heads=width // head_dim,
        max_position_embeddings=positions,
        hidden_act=HIDDEN_ACT,
        layer_norm_eps=LAYER_NORM_EPS,
        bos_token_id=BOS_TOKEN_ID,
        eos_token_id=EOS_TOKEN_ID,
        pad_token_id=PAD_TOKEN_ID,
    )


def clip_text_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, metadata: Mapping[str, str] | None = None
) -> CLIPTextModel:
    """A ``CLIPTextModel`` in eval mode holding the file's tensors in ``dtype``; the ``text_model.`` prefix is
    dropped, and the projection, logit scale and position ids are ignored (``metadata`` is unused: CLIP-L files are
    not fp8-scaled).

    Built on the meta device and given the tensors (``assign``). Raises ``StateDictError`` for tensors that are no
    CLIP-L-style text tower, or keys missing, unexpected or misshapen.
    """
    del metadata
    config = detect_clip_text_config(state_dict)
    tensors = {key.removeprefix(PREFIX): tensor for key, tensor in state_dict.items() if key not in IGNORED}
    with torch.device("meta"):
        model = CLIPTextModel(config)
    expected = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    check_tensor_shapes(tensors, expected, "CLIP text encoder", lambda key: PREFIX + key)
    model.load_state_dict({key: tensor.to(dtype) for key, tensor in tensors.items()}, strict=True, assign=True)
    embeddings = model.embeddings
    embeddings.position_ids = torch.arange(config.max_position_embeddings).expand((1, -1))  # a buffer, not in files
    return model.requires_grad_(False).eval()


def clip_text_to_single_file(model: CLIPTextModel, projection: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The text tower's tensors in the release layout (``text_model.`` keys), with ``text_projection.weight`` when
    given."""
    tensors = {PREFIX + key: tensor.detach().contiguous() for key, tensor in model.state_dict().items()}
    if projection is not None:
        tensors[PROJECTION] = projection.detach().contiguous()
    return tensors


def _check_clip_text(state_dict: Mapping[str, torch.Tensor]) -> None:
    """Raise ``StateDictError`` saying what the tensors are instead, when they are no CLIP-L-style text tower."""
    if is_clip_l_text(state_dict):
        return
    if any(key.startswith(_VISION_PREFIXES) for key in state_dict):
        raise StateDictError(
            "not a CLIP text encoder alone: the file holds a CLIP vision tower (a CLIP_VISION model or a whole CLIP "
            "model); use a text-only file such as clip_l.safetensors"
        )
    if TOKEN_EMBEDDING in state_dict:
        width = tuple(state_dict[TOKEN_EMBEDDING].shape)[-1]
        if width in OTHER_WIDTHS:
            raise StateDictError(f"not a CLIP-L text encoder: {OTHER_WIDTHS[width]}, {width} wide (CLIP-L is 768)")
    sample = ", ".join(sorted(state_dict)[:3]) or "none"
    raise StateDictError(
        f"not a CLIP text encoder: no {TOKEN_EMBEDDING}, {POSITION_EMBEDDING} and text_model.encoder.layers.N "
        f"weights (keys such as {sample})"
    )


def _shape(state_dict: Mapping[str, torch.Tensor], key: str, dims: int) -> tuple[int, ...]:
    shape = tuple(state_dict[key].shape)
    if len(shape) != dims:
        raise StateDictError(f"CLIP text {key} has shape {shape}, expected {dims} dimensions")
    return shape
