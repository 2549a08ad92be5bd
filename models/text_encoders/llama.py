"""Llama text encoders (HunyuanVideo's Llama 3 8B from llava-llama-3-8b) from single files, as Comfy-Org releases
them.

``llava_llama3_fp16.safetensors`` and ``llava_llama3_fp8_scaled.safetensors`` hold the language model of
xtuner/llava-llama-3-8b-v1_1 in the ``LlamaForCausalLM`` layout: ``model.embed_tokens.weight`` ``[vocab, hidden]``,
per layer N ``model.layers.N.self_attn.{q,k,v,o}_proj.weight``, ``model.layers.N.mlp.{gate,up,down}_proj.weight``,
``model.layers.N.{input,post_attention}_layernorm.weight``, then ``model.norm.weight`` and maybe ``lm_head.weight``.
HunyuanVideoPipeline's ``text_encoder`` is a ``LlamaModel``: the same keys without ``model.``, and no ``lm_head``
(only hidden states are read), so the prefix is dropped and the head ignored. Files saved from a ``LlamaModel``
(no prefix) load too. The fp8 file stores the linear weights as float8 with a ``scale_weight`` each and a
``scaled_fp8`` marker (see ``models.scaled_fp8``).

Single files carry no config, so it is read from the shapes; the per-head width is not in them (the projections
only give ``heads * head_dim``), so it is taken as Llama 3's ``HEAD_DIM`` = 128 for every file: tiny stand-ins
keep heads of 128 too. For the 8B model that gives ``LLAVA_LLAMA3_8B``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from transformers import LlamaConfig, LlamaModel
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from models.errors import StateDictError
from models.scaled_fp8 import dequantize_scaled
from models.state_dict_checks import check_tensor_shapes

__all__ = [
    "HEAD_DIM",
    "LLAVA_LLAMA3_8B",
    "detect_llama_config",
    "is_llama",
    "llama_from_state_dict",
    "llama_to_single_file",
]

# The language model of llava-llama-3-8b (Llama 3 8B Instruct, vocabulary padded to 128320), as detect_llama_config
# reads it from the released files.
LLAVA_LLAMA3_8B = {
    "vocab_size": 128320,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
}
HEAD_DIM = 128  # Llama 3's head width; not recoverable from shapes, assumed for every file
# Not recoverable from shapes either: Llama 3's values.
ROPE_THETA = 500000.0
RMS_NORM_EPS = 1e-5
MAX_POSITION_EMBEDDINGS = 8192

PREFIX = "model."  # the LlamaForCausalLM layout of the releases
LM_HEAD = "lm_head.weight"
ROTARY_BUFFER = ".rotary_emb.inv_freq"
EMBED = "embed_tokens.weight"
NORM = "norm.weight"
_LAYER_KEY = re.compile(r"^(?:model\.)?layers\.(\d+)\.")
# Present in other decoder-only families with the same key names (Qwen2's biases, Qwen3's q/k norms, Gemma's norms).
_FOREIGN = (".self_attn.q_proj.bias", ".self_attn.q_norm.weight", ".pre_feedforward_layernorm.weight")


def _layer(layer: int, name: str) -> str:
    return f"layers.{layer}.{name}.weight"


def is_llama(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the tensors are a Llama decoder (``model.``-prefixed as released, or without the prefix): a token
    embedding, a final norm, and layers of bias-free attention and gated SiLU feed-forwards."""
    prefix = _prefix(state_dict)
    if prefix is None:
        return False
    required = (EMBED, NORM, _layer(0, "self_attn.k_proj"), _layer(0, "mlp.gate_proj"), _layer(0, "input_layernorm"))
    return all(prefix + key in state_dict for key in required) and not any(
        key.endswith(foreign) for key in state_dict for foreign in _FOREIGN
    )


def detect_llama_config(state_dict: Mapping[str, torch.Tensor]) -> LlamaConfig:
    """The ``LlamaConfig`` of a decoder state dict, read from its shapes (meta tensors will do).

    ``vocab_size`` and ``hidden_size`` come from the token embedding, ``num_hidden_layers`` from the layer count,
    ``intermediate_size`` from ``gate_proj``, the query and key/value head counts from ``q_proj`` / ``k_proj`` rows
    divided by ``HEAD_DIM``; rope theta, norm epsilon and positions are Llama 3's. Raises ``StateDictError`` when the
    tensors are no Llama decoder or their shapes do not agree.
    """
    prefix = _prefix(state_dict)
    if prefix is None or not is_llama(state_dict):
        sample = ", ".join(sorted(state_dict)[:3]) or "none"
        raise StateDictError(
            f"not a Llama text encoder: no model.embed_tokens / model.layers.N.self_attn.q_proj / model.norm "
            f"weights of a Llama decoder (keys such as {sample})"
        )
    layers = _layers(state_dict)
    if layers != list(range(len(layers))):
        missing = sorted(set(range(layers[-1] + 1)) - set(layers))
        raise StateDictError(f"Llama layers are not numbered 0..{layers[-1]}: layer(s) {missing} missing")
    vocab_size, hidden = _shape(state_dict, prefix + EMBED, 2)
    q_rows, q_in = _shape(state_dict, prefix + _layer(0, "self_attn.q_proj"), 2)
    kv_rows, k_in = _shape(state_dict, prefix + _layer(0, "self_attn.k_proj"), 2)
    intermediate, gate_in = _shape(state_dict, prefix + _layer(0, "mlp.gate_proj"), 2)
    if q_in != hidden or k_in != hidden or gate_in != hidden:
        raise StateDictError(
            f"Llama shapes do not agree: embedding width {hidden}, q_proj {q_rows}x{q_in}, k_proj {kv_rows}x{k_in}, "
            f"gate_proj {intermediate}x{gate_in}"
        )
    heads, kv_heads = q_rows // HEAD_DIM, kv_rows // HEAD_DIM
    if q_rows % HEAD_DIM or kv_rows % HEAD_DIM or kv_heads == 0 or heads % kv_heads:
        raise StateDictError(
            f"Llama q_proj ({q_rows} rows) and k_proj ({kv_rows} rows) are not whole heads of {HEAD_DIM} "
            "(Llama 3's head width, assumed for every file)"
        )
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=len(layers),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=HEAD_DIM,
        hidden_act="silu",
        max_position_embeddings=MAX_POSITION_EMBEDDINGS,
        rms_norm_eps=RMS_NORM_EPS,
        rope_theta=ROPE_THETA,
        attention_bias=False,
        mlp_bias=False,
        tie_word_embeddings=False,
    )


def llama_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype, metadata: Mapping[str, str] | None = None
) -> LlamaModel:
    """A ``LlamaModel`` (what HunyuanVideoPipeline's ``text_encoder`` is) in eval mode holding the file's tensors in
    ``dtype`` (scaled fp8 weights restored); the ``model.`` prefix is dropped, ``lm_head.weight`` and saved rotary
    frequencies are ignored, and the rotary frequencies are computed in float32 (as transformers keeps them).

    The model is built on the meta device and takes the tensors (``assign``). Raises ``StateDictError`` for tensors
    that are no Llama decoder, or keys missing, unexpected or misshapen.
    """
    plain = dequantize_scaled(state_dict, dtype, metadata)
    plain.pop(LM_HEAD, None)
    for key in [key for key in plain if key.endswith(ROTARY_BUFFER)]:  # kept by files of old transformers versions
        del plain[key]
    config = detect_llama_config(plain)
    prefix = _prefix(plain) or ""
    tensors = {key.removeprefix(prefix): tensor for key, tensor in plain.items()}
    with torch.device("meta"):
        model = LlamaModel(config)
    expected = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    check_tensor_shapes(tensors, expected, "Llama text encoder", lambda key: prefix + key)
    model.load_state_dict({key: tensor.to(dtype) for key, tensor in tensors.items()}, strict=True, assign=True)
    _rebuild_rotary_buffers(model)
    return model.requires_grad_(False).eval()


def llama_to_single_file(model: LlamaModel, lm_head: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The decoder's tensors in the release layout (``model.``-prefixed keys), with ``lm_head.weight`` when given."""
    tensors = {PREFIX + key: tensor.detach().contiguous() for key, tensor in model.state_dict().items()}
    if lm_head is not None:
        tensors[LM_HEAD] = lm_head.detach().contiguous()
    return tensors


def _rebuild_rotary_buffers(model: LlamaModel) -> None:
    """Rebuild the rotary embedding on the CPU: its inverse frequencies are a non-persistent buffer, not in files,
    still on the meta device after building the model there."""
    model.rotary_emb = LlamaRotaryEmbedding(model.config)


def _prefix(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """``"model."`` or ``""``: where the decoder's keys start; ``None`` when there is no Llama-like layer 0."""
    for prefix in (PREFIX, ""):
        if prefix + _layer(0, "self_attn.q_proj") in state_dict:
            return prefix
    return None


def _layers(state_dict: Mapping[str, torch.Tensor]) -> list[int]:
    """The sorted layer numbers of ``[model.]layers.N.`` keys."""
    return sorted({int(match.group(1)) for key in state_dict if (match := _LAYER_KEY.match(key))})


def _shape(state_dict: Mapping[str, torch.Tensor], key: str, dims: int) -> tuple[int, ...]:
    shape = tuple(state_dict[key].shape)
    if len(shape) != dims:
        raise StateDictError(f"Llama {key} has shape {shape}, expected {dims} dimensions")
    return shape
