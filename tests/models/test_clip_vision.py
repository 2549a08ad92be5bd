"""CLIP vision from single files: detection (the real ViT-H/14's and ViT-L/14's shapes on meta tensors), the tiny file
loading back to the same model, the open_clip layout, and encodings as diffusers' ``WanImageToVideoPipeline`` gives.

Resizing: diffusers preprocesses with ``CLIPImageProcessor``, which resizes uint8 images with PIL (bicubic, in two
passes, rounding to 8 bits after each); ``preprocess_images`` resizes floats with torch's antialiased bicubic, which
matches PIL's float resize to about 1e-6. The gap is PIL's 8-bit rounding: measured at most 1.4/255 per pixel, so
pixels are compared within 2/255, the penultimate states within 2% (measured 0.7%), and without resizing exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPVisionModel, CLIPVisionModelWithProjection

from models.clip_vision import (
    CLIP_MEAN,
    CLIP_STD,
    clip_vision_from_state_dict,
    detect_clip_vision_config,
    encode_images,
    is_clip_vision,
    preprocess_images,
)
from models.errors import StateDictError
from models.loading import load_state_dict
from models.tiny.text import tiny_clip_vision, write_tiny_clip_vision

STD = torch.tensor(CLIP_STD).view(1, 3, 1, 1)


def vision_shapes(
    width: int, layers: int, mlp: int, patch: int, image: int, projection: int | None
) -> dict[str, torch.Tensor]:
    """A meta-tensor state dict in the HF CLIP vision layout (written from the layout, not from a model)."""
    shapes: dict[str, tuple[int, ...]] = {
        "vision_model.embeddings.class_embedding": (width,),
        "vision_model.embeddings.patch_embedding.weight": (width, 3, patch, patch),
        "vision_model.embeddings.position_embedding.weight": ((image // patch) ** 2 + 1, width),
    }
    for norm in ("pre_layrnorm", "post_layernorm"):
        shapes |= {f"vision_model.{norm}.weight": (width,), f"vision_model.{norm}.bias": (width,)}
    for layer in range(layers):
        prefix = f"vision_model.encoder.layers.{layer}."
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes |= {f"{prefix}self_attn.{name}.weight": (width, width), f"{prefix}self_attn.{name}.bias": (width,)}
        for norm in ("layer_norm1", "layer_norm2"):
            shapes |= {f"{prefix}{norm}.weight": (width,), f"{prefix}{norm}.bias": (width,)}
        shapes |= {f"{prefix}mlp.fc1.weight": (mlp, width), f"{prefix}mlp.fc1.bias": (mlp,)}
        shapes |= {f"{prefix}mlp.fc2.weight": (width, mlp), f"{prefix}mlp.fc2.bias": (width,)}
    if projection is not None:
        shapes["visual_projection.weight"] = (projection, width)
    return {key: torch.empty(shape, device="meta", dtype=torch.float16) for key, shape in shapes.items()}


def to_open_clip(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The open_clip layout of an HF vision tower (as open_clip's ``VisionTransformer`` names its tensors)."""
    names = {
        "vision_model.embeddings.class_embedding": "visual.class_embedding",
        "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
        "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
        "vision_model.pre_layrnorm": "visual.ln_pre",
        "vision_model.post_layernorm": "visual.ln_post",
        "vision_model.encoder.layers.": "visual.transformer.resblocks.",
        "layer_norm1": "ln_1",
        "layer_norm2": "ln_2",
        "self_attn.out_proj": "attn.out_proj",
        "mlp.fc1": "mlp.c_fc",
        "mlp.fc2": "mlp.c_proj",
    }
    result = {"visual.proj": state_dict["visual_projection.weight"].t().contiguous()}
    for key, tensor in state_dict.items():
        if ("_proj." in key and "out_proj" not in key) or key == "visual_projection.weight":
            continue
        for old, new in names.items():
            key = key.replace(old, new)
        result[key] = tensor
    layers = {key.split(".")[3] for key in state_dict if key.startswith("vision_model.encoder.layers.")}
    for layer in layers:
        prefix = f"vision_model.encoder.layers.{layer}.self_attn."
        for kind in ("weight", "bias"):
            stacked = torch.cat([state_dict[f"{prefix}{part}_proj.{kind}"] for part in "qkv"])
            result[f"visual.transformer.resblocks.{layer}.attn.in_proj_{kind}"] = stacked
    return result


def image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth-ish uint8 RGB image (random colours upscaled), like a photo rather than noise."""
    colours = np.random.default_rng(seed).integers(0, 256, (height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8)
    return np.array(Image.fromarray(colours).resize((width, height), Image.BICUBIC))


def as_batch(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array)[None].float() / 255


@pytest.fixture(scope="module")
def model() -> CLIPVisionModelWithProjection:
    return tiny_clip_vision()


@pytest.fixture(scope="module")
def pipeline(model: CLIPVisionModelWithProjection):
    """A ``WanImageToVideoPipeline`` with the tiny encoder and Wan's image processor settings (only encode_image
    is used)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    processor = CLIPImageProcessorPil(  # what CLIPImageProcessor falls back to without torchvision
        size={"shortest_edge": 224},
        crop_size={"height": 224, "width": 224},
        resample=3,
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    return WanImageToVideoPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=None,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        image_processor=processor,
        image_encoder=model,
    )


def test_the_real_vit_h_and_vit_l_are_detected_from_their_shapes() -> None:
    vit_h = vision_shapes(1280, 32, 5120, 14, 224, 1024)
    assert is_clip_vision(vit_h)
    config = detect_clip_vision_config(vit_h)
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (1280, 16, 32)
    assert (config.intermediate_size, config.patch_size, config.image_size) == (5120, 14, 224)
    assert (config.projection_dim, config.hidden_act, config.layer_norm_eps) == (1024, "gelu", 1e-5)
    loaded = clip_vision_from_state_dict(vit_h, torch.float16)  # meta in, meta out: all keys matched
    assert isinstance(loaded, CLIPVisionModelWithProjection) and loaded.visual_projection.weight.is_meta
    vit_l = detect_clip_vision_config(vision_shapes(1024, 24, 4096, 14, 336, 768))
    assert (vit_l.num_attention_heads, vit_l.image_size, vit_l.projection_dim) == (16, 336, 768)
    assert vit_l.hidden_act == "quick_gelu"
    tiny = detect_clip_vision_config(tiny_clip_vision().state_dict())
    assert (tiny.hidden_size, tiny.num_attention_heads, tiny.hidden_act) == (160, 2, "gelu")


def test_the_tiny_file_loads_back_to_the_same_model(tmp_path: Path) -> None:
    path = write_tiny_clip_vision(tmp_path)
    model = clip_vision_from_state_dict(load_state_dict(path), torch.float32)
    assert isinstance(model, CLIPVisionModelWithProjection) and not model.training
    reference = tiny_clip_vision().half().float()
    images = as_batch(image(240, 320))
    ours, theirs = encode_images(model, images), encode_images(reference, images)
    for field in ("last_hidden_state", "penultimate_hidden_states", "image_embeds"):
        assert torch.equal(getattr(ours, field), getattr(theirs, field)), field
    assert ours.penultimate_hidden_states.shape == (1, 257, 160) and ours.image_embeds.shape == (1, 64)


def test_penultimate_states_equal_the_wan_pipelines_without_resizing(model, pipeline) -> None:
    array = image(224, 224)
    expected = pipeline.encode_image(Image.fromarray(array), device=torch.device("cpu"))
    output = encode_images(model, as_batch(array), "center")
    torch.testing.assert_close(output.penultimate_hidden_states, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("size", [(200, 300), (480, 832), (100, 100)])
def test_resized_images_match_the_wan_pipeline_within_pil_rounding(model, pipeline, size: tuple[int, int]) -> None:
    array = image(*size, seed=size[0])
    pixels = preprocess_images(as_batch(array), 224, "center")
    expected_pixels = pipeline.image_processor(images=Image.fromarray(array), return_tensors="pt").pixel_values
    assert ((pixels - expected_pixels).abs() * STD).max() <= 2 / 255
    expected = pipeline.encode_image(Image.fromarray(array), device=torch.device("cpu"))
    difference = encode_images(model, as_batch(array)).penultimate_hidden_states - expected
    assert difference.norm() / expected.norm() < 0.02


def test_resizing_matches_pils_float_resize() -> None:
    array = image(200, 300)
    channels = [Image.fromarray(array[..., c].astype(np.float32) / 255, mode="F") for c in range(3)]
    resized = np.stack([np.asarray(channel.resize((336, 224), Image.BICUBIC)) for channel in channels])
    expected = torch.from_numpy(resized)[None, :, :, 56:280].clamp(0, 1) - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    torch.testing.assert_close(preprocess_images(as_batch(array), 224, "center"), expected / STD, rtol=0, atol=1e-4)


def test_crop_none_resizes_the_whole_image_to_the_square(model) -> None:
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    array = image(200, 300)
    squash = CLIPImageProcessorPil(
        size={"height": 224, "width": 224}, do_center_crop=False, resample=3, image_mean=CLIP_MEAN, image_std=CLIP_STD
    )
    expected = squash(images=Image.fromarray(array), return_tensors="pt").pixel_values
    pixels = preprocess_images(as_batch(array), 224, "none")
    assert pixels.shape == (1, 3, 224, 224) and ((pixels - expected).abs() * STD).max() <= 2 / 255
    batch = torch.cat([as_batch(array), as_batch(image(200, 300, seed=1))])
    output = encode_images(model, batch, "none")
    assert output.last_hidden_state.shape == (2, 257, 160) and output.image_embeds.shape == (2, 64)


def test_without_projection_the_model_has_no_image_embeds(model) -> None:
    tensors = {key: value for key, value in model.state_dict().items() if key != "visual_projection.weight"}
    bare = clip_vision_from_state_dict(tensors, torch.float32)
    assert isinstance(bare, CLIPVisionModel)
    images = as_batch(image(224, 224))
    output, full = encode_images(bare, images), encode_images(model, images)
    assert output.image_embeds is None
    assert torch.equal(output.penultimate_hidden_states, full.penultimate_hidden_states)


def test_the_open_clip_layout_loads_to_the_same_model(model) -> None:
    text_tower = {"token_embedding.weight": torch.zeros(4, 2), "logit_scale": torch.ones(())}
    open_clip = to_open_clip(model.state_dict()) | text_tower
    assert is_clip_vision(open_clip)
    loaded = clip_vision_from_state_dict(open_clip, torch.float32)
    images = as_batch(image(224, 224))
    assert torch.equal(encode_images(loaded, images).image_embeds, encode_images(model, images).image_embeds)


def test_open_clip_attention_maps_as_torch_multihead_attention(model) -> None:
    """open_clip's blocks are ``nn.MultiheadAttention``s: its in_proj/out_proj must give the same attention here."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        attention = torch.nn.MultiheadAttention(160, 2, batch_first=True).eval()
        tokens = torch.randn(2, 9, 160)
    open_clip = to_open_clip(model.state_dict())
    for name in ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"):
        open_clip[f"visual.transformer.resblocks.0.attn.{name}"] = attention.get_parameter(name).detach()
    loaded = clip_vision_from_state_dict(open_clip, torch.float32)
    with torch.no_grad():
        expected, _ = attention(tokens, tokens, tokens, need_weights=False)
        ours = loaded.vision_model.encoder.layers[0].self_attn(tokens)[0]
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_other_or_broken_files_are_refused_clearly(model) -> None:
    umt5 = {"shared.weight": torch.empty(1), "encoder.block.0.layer.0.SelfAttention.q.weight": torch.empty(1)}
    assert not is_clip_vision(umt5)
    with pytest.raises(StateDictError, match=r"^not a CLIP vision model: .*keys such as encoder\.block"):
        clip_vision_from_state_dict(umt5, torch.float32)
    truncated = vision_shapes(1280, 32, 5120, 14, 224, 1024)
    del truncated["vision_model.encoder.layers.31.mlp.fc2.bias"]
    with pytest.raises(StateDictError, match=r"1 missing \(vision_model\.encoder\.layers\.31\.mlp\.fc2\.bias\)"):
        clip_vision_from_state_dict(truncated, torch.float16)
    odd = vision_shapes(1280, 2, 5120, 14, 224, 1024)
    odd["vision_model.embeddings.position_embedding.weight"] = torch.empty(250, 1280, device="meta")
    with pytest.raises(StateDictError, match=r"shapes do not agree: .*position embedding 250x1280"):
        detect_clip_vision_config(odd)
    layer_scale = to_open_clip(model.state_dict()) | {"visual.transformer.resblocks.0.ls_1.gamma": torch.ones(160)}
    with pytest.raises(StateDictError, match=r"unexpected \(vision_model\.encoder\.layers\.0\.ls_1\.gamma"):
        clip_vision_from_state_dict(layer_scale, torch.float32)
    with pytest.raises(ValueError, match="crop must be"):
        encode_images(model, torch.zeros(1, 8, 8, 3), "stretch")
    with pytest.raises(ValueError, match=r"\[batch, height, width, 3\]"):
        encode_images(model, torch.zeros(1, 3, 8, 8))
