"""The video families ``bench/sampling.py`` compares: for each, the API prompt of our graph and the diffusers pipeline
call doing the same work (same files' values, sigmas, guidance, seeded CPU noise), with its default sizes.

- ``wan``: ``UNETLoader -> ModelSamplingSD3 -> KSampler (euler, normal, cfg 5)`` against ``WanPipeline``.
- ``ltxv``: ``CheckpointLoaderSimple``, ``CLIPLoader`` (ltxv), ``LTXVConditioning``, ``EmptyLTXVLatentVideo``,
  ``LTXVScheduler`` + ``SamplerCustom`` (euler, cfg 3) against ``LTXPipeline`` (the release's dynamic-shift scheduler).
- ``hunyuan_video``: ``UNETLoader -> ModelSamplingSD3`` (shift 7), ``DualCLIPLoader`` (hunyuan_video),
  ``FluxGuidance`` (6, the pipeline's default embedded guidance), ``KSampler (euler, simple, cfg 1)``: one forward a
  step, as HunyuanVideo runs, against ``HunyuanVideoPipeline`` (no true CFG).
- ``mochi``: ``UNETLoader``, ``CLIPLoader`` (mochi), ``EmptyMochiLatentVideo``, ``KSampler (euler,
  linear_quadratic, cfg 4.5)`` against ``MochiPipeline``.

Every graph ends ``VAEDecode -> BenchFrames`` and names its sampler node ``sample``. Only ``wan`` has a real-size
(``480p``) model set; the others run the ``models/tiny`` stand-ins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch

from bench.sampling_models import ModelSet, describe_pipeline, load_family_pipeline

__all__ = [
    "FAMILIES",
    "NEGATIVE",
    "PROMPT",
    "RUN_NODES",
    "SAMPLER_NODE",
    "DiffusersCall",
    "Family",
    "Preset",
    "Settings",
]

SEED = 42
PROMPT = "a red car driving on the beach at sunset, cinematic"
NEGATIVE = "blurry, low quality"
SAMPLER_NODE = "sample"
RUN_NODES = (SAMPLER_NODE, "decode", "frames")  # what a warm run with a new seed executes, unless a family says
WAN_MAX_SEQUENCE_LENGTH = 512  # UMT5 tokens, as WanPipeline.__call__ and our CLIPTextEncode pad them
LTX_FRAME_RATE = 25.0  # LTXPipeline's default frame_rate, LTXVConditioning's default
HUNYUAN_GUIDANCE = 6.0  # HunyuanVideoPipeline's default (embedded) guidance_scale


@dataclass(frozen=True)
class Preset:
    """Default picture size, length, steps and repeats."""

    width: int
    height: int
    frames: int
    steps: int
    repeats: int


@dataclass(frozen=True)
class Settings:
    """What one family's benchmark run does."""

    size: str
    device: str
    width: int
    height: int
    frames: int
    steps: int
    repeats: int
    seed: int = SEED
    shift: float | None = 3.0
    cfg: float = 5.0
    family: str = "wan"


@dataclass(frozen=True)
class DiffusersCall:
    """A pipeline and the keyword arguments of its call that stay the same every repeat (the embeddings, computed
    once); the seed's generator, ``output_type`` and the step callback are added per call."""

    pipeline: Any
    kwargs: Mapping[str, Any]
    models: Mapping[str, Any]  # what the files hold, for the results
    per_seed: Callable[[int], Mapping[str, Any]] = lambda _seed: MappingProxyType({})  # e.g. latents from our noise


@dataclass(frozen=True)
class Family:
    """One family's sides of the comparison and its sizes."""

    name: str
    title: str
    pipeline: str
    spatial_multiple: int
    frame_step: int  # frames = 1 + a multiple of this (the VAE's temporal compression)
    presets: Mapping[str, Preset]  # by --size ("tiny", maybe "480p")
    quick: Preset
    shift: float | None
    cfg: float
    graph: Callable[[ModelSet, Settings, int], dict[str, Any]]
    diffusers: Callable[[ModelSet, Settings, torch.device, torch.dtype], DiffusersCall]
    sampler: str = "euler"  # as the report names the sampling
    schedule: str | None = None  # as the report names the schedule; None: the flow shift (dynamic when shift is None)
    run_nodes: tuple[str, ...] = RUN_NODES  # the nodes a warm run with a new seed executes, nothing else


def _tail(vae: list[Any], samples: tuple[str, int] = (SAMPLER_NODE, 0)) -> dict[str, Any]:
    """The decode (of ``samples``, by default the sampler's output) and output nodes every graph ends with."""
    return {
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": list(samples), "vae": vae}},
        "frames": {"class_type": "BenchFrames", "inputs": {"images": ["decode", 0]}},
    }


def _text(clip: dict[str, Any]) -> dict[str, Any]:
    """The loader node ``clip`` and the positive and negative ``CLIPTextEncode`` nodes."""
    return {
        "clip": clip,
        "positive": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["clip", 0], "text": PROMPT}},
        "negative": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["clip", 0], "text": NEGATIVE}},
    }


def _ksampler(
    model: list[Any], settings: Settings, seed: int, scheduler: str, positive: list[Any], negative: list[Any]
) -> dict[str, Any]:
    """A ``KSampler`` node (euler, full denoise) on the ``latent`` node."""
    return {
        "class_type": "KSampler",
        "inputs": {
            "model": model,
            "seed": seed,
            "steps": settings.steps,
            "cfg": settings.cfg,
            "sampler_name": "euler",
            "scheduler": scheduler,
            "positive": positive,
            "negative": negative,
            "latent_image": ["latent", 0],
            "denoise": 1.0,
        },
    }


def _latent(class_type: str, settings: Settings) -> dict[str, Any]:
    size = {"width": settings.width, "height": settings.height, "length": settings.frames, "batch_size": 1}
    return {"class_type": class_type, "inputs": size}


def _described(pipeline: Any, models: ModelSet) -> dict[str, Any]:
    return describe_pipeline(pipeline, f"{models.size} random (models/tiny), from the pipeline folder's networks")


# ----- wan ---------------------------------------------------------------------------------------------------------


def wan_graph(models: ModelSet, settings: Settings, seed: int) -> dict[str, Any]:
    """Wan 2.1 text-to-video; only the seed changes between repeats."""
    return {
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": models.unet, "weight_dtype": "default"}},
        "shift": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["unet", 0], "shift": settings.shift}},
        **_text({"class_type": "CLIPLoader", "inputs": {"clip_name": models.text_encoder, "type": "wan"}}),
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": models.vae}},
        "latent": _latent("EmptyHunyuanLatentVideo", settings),
        # "normal" equals FlowMatchEulerDiscreteScheduler's sigmas exactly
        SAMPLER_NODE: _ksampler(["shift", 0], settings, seed, "normal", ["positive", 0], ["negative", 0]),
        **_tail(["vae", 0]),
    }


def wan_diffusers(models: ModelSet, settings: Settings, device: torch.device, dtype: torch.dtype) -> DiffusersCall:
    """``WanPipeline`` over diffusers' ``from_pretrained`` of the same weights; embeddings from ``encode_prompt``."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline

    components = models.diffusers_components(dtype)
    pipeline = WanPipeline(
        tokenizer=components.tokenizer,
        text_encoder=components.text_encoder,
        vae=components.vae,
        transformer=components.transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=settings.shift),
    ).to(device)
    pipeline.set_progress_bar_config(disable=True)
    with torch.no_grad():
        positive, negative = pipeline.encode_prompt(
            PROMPT,
            NEGATIVE,
            do_classifier_free_guidance=True,
            max_sequence_length=WAN_MAX_SEQUENCE_LENGTH,
            device=device,
        )
    kwargs = {"prompt_embeds": positive, "negative_prompt_embeds": negative, "guidance_scale": settings.cfg}
    return DiffusersCall(pipeline, MappingProxyType(kwargs), models.describe())


# ----- LTX-Video ---------------------------------------------------------------------------------------------------


def ltxv_graph(models: ModelSet, settings: Settings, seed: int) -> dict[str, Any]:
    """LTX-Video 0.9.5 text-to-video as ComfyUI's workflow: the release scheduler's sigmas from ``LTXVScheduler``."""
    return {
        "checkpoint": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": models.ltxv_checkpoint}},
        **_text({"class_type": "CLIPLoader", "inputs": {"clip_name": models.t5, "type": "ltxv"}}),
        "conditioning": {
            "class_type": "LTXVConditioning",
            "inputs": {"positive": ["positive", 0], "negative": ["negative", 0], "frame_rate": LTX_FRAME_RATE},
        },
        "latent": _latent("EmptyLTXVLatentVideo", settings),
        "sigmas": {
            "class_type": "LTXVScheduler",
            "inputs": {
                "steps": settings.steps,
                "max_shift": 2.05,
                "base_shift": 0.95,
                "stretch": True,
                "terminal": 0.1,
                "latent": ["latent", 0],
            },
        },
        "sampler": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        SAMPLER_NODE: {
            "class_type": "SamplerCustom",
            "inputs": {
                "model": ["checkpoint", 0],
                "add_noise": True,
                "noise_seed": seed,
                "cfg": settings.cfg,
                "positive": ["conditioning", 0],
                "negative": ["conditioning", 1],
                "sampler": ["sampler", 0],
                "sigmas": ["sigmas", 0],
                "latent_image": ["latent", 0],
            },
        },
        **_tail(["checkpoint", 2]),
    }


def ltxv_diffusers(models: ModelSet, settings: Settings, device: torch.device, dtype: torch.dtype) -> DiffusersCall:
    """``LTXPipeline`` from the tiny LTX-Video folder (the same networks, the release's scheduler config)."""
    from diffusers import LTXPipeline

    pipeline = load_family_pipeline(LTXPipeline, models.folder("LTX-Video"), dtype, device, ("text_encoder",))
    with torch.no_grad():
        positive, positive_mask, negative, negative_mask = pipeline.encode_prompt(
            PROMPT, NEGATIVE, do_classifier_free_guidance=True, device=device
        )
    kwargs = {
        "prompt_embeds": positive,
        "prompt_attention_mask": positive_mask,
        "negative_prompt_embeds": negative,
        "negative_prompt_attention_mask": negative_mask,
        "guidance_scale": settings.cfg,
        "frame_rate": int(LTX_FRAME_RATE),
    }
    return DiffusersCall(pipeline, MappingProxyType(kwargs), _described(pipeline, models))


# ----- HunyuanVideo ------------------------------------------------------------------------------------------------


def hunyuan_graph(models: ModelSet, settings: Settings, seed: int) -> dict[str, Any]:
    """HunyuanVideo text-to-video as ComfyUI's workflow: embedded guidance, cfg 1 (no negative pass)."""
    clip_inputs = {"clip_name1": models.clip_l, "clip_name2": models.llava_llama3, "type": "hunyuan_video"}
    guidance = {"class_type": "FluxGuidance", "inputs": {"conditioning": ["positive", 0], "guidance": HUNYUAN_GUIDANCE}}
    return {
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": models.hunyuan_unet, "weight_dtype": "default"}},
        "shift": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["unet", 0], "shift": settings.shift}},
        **_text({"class_type": "DualCLIPLoader", "inputs": clip_inputs}),
        "guidance": guidance,
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": models.hunyuan_vae}},
        "latent": _latent("EmptyHunyuanLatentVideo", settings),
        # "simple" at shift 7 equals the pipeline's shifted linspace(1, 0) sigmas exactly
        SAMPLER_NODE: _ksampler(["shift", 0], settings, seed, "simple", ["guidance", 0], ["negative", 0]),
        **_tail(["vae", 0]),
    }


def hunyuan_diffusers(models: ModelSet, settings: Settings, device: torch.device, dtype: torch.dtype) -> DiffusersCall:
    """``HunyuanVideoPipeline`` from the tiny HunyuanVideo folder; embedded guidance, no true CFG (cfg 1)."""
    from diffusers import HunyuanVideoPipeline

    text_encoders = ("text_encoder", "text_encoder_2")
    pipeline = load_family_pipeline(HunyuanVideoPipeline, models.folder("HunyuanVideo"), dtype, device, text_encoders)
    with torch.no_grad():
        embeds, pooled, mask = pipeline.encode_prompt(PROMPT, device=device)
    kwargs = {
        "prompt_embeds": embeds,
        "pooled_prompt_embeds": pooled,
        "prompt_attention_mask": mask,
        "guidance_scale": HUNYUAN_GUIDANCE,
        "true_cfg_scale": settings.cfg,
    }
    return DiffusersCall(pipeline, MappingProxyType(kwargs), _described(pipeline, models))


# ----- Mochi -------------------------------------------------------------------------------------------------------


def mochi_graph(models: ModelSet, settings: Settings, seed: int) -> dict[str, Any]:
    """Mochi preview text-to-video: Genmo's linear-quadratic schedule from ``KSampler``."""
    return {
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": models.mochi_unet, "weight_dtype": "default"}},
        **_text({"class_type": "CLIPLoader", "inputs": {"clip_name": models.t5, "type": "mochi"}}),
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": models.mochi_vae}},
        "latent": _latent("EmptyMochiLatentVideo", settings),
        SAMPLER_NODE: _ksampler(["unet", 0], settings, seed, "linear_quadratic", ["positive", 0], ["negative", 0]),
        **_tail(["vae", 0]),
    }


def mochi_diffusers(models: ModelSet, settings: Settings, device: torch.device, dtype: torch.dtype) -> DiffusersCall:
    """``MochiPipeline`` from the tiny mochi-1-preview folder (inverted-sigma scheduler, Genmo's schedule)."""
    from diffusers import MochiPipeline

    folder = models.folder("mochi-1-preview")
    pipeline = load_family_pipeline(MochiPipeline, folder, dtype, device, ("text_encoder",))
    with torch.no_grad():
        positive, positive_mask, negative, negative_mask = pipeline.encode_prompt(
            PROMPT, NEGATIVE, do_classifier_free_guidance=True, device=device
        )
    kwargs = {
        "prompt_embeds": positive,
        "prompt_attention_mask": positive_mask,
        "negative_prompt_embeds": negative,
        "negative_prompt_attention_mask": negative_mask,
        "guidance_scale": settings.cfg,
    }
    return DiffusersCall(pipeline, MappingProxyType(kwargs), _described(pipeline, models))


FAMILIES: Mapping[str, Family] = MappingProxyType(
    {
        "wan": Family(
            "wan", "Wan 2.1 t2v", "WanPipeline", 16, 4,
            MappingProxyType({"tiny": Preset(128, 128, 17, 8, 10), "480p": Preset(832, 480, 81, 10, 3)}),
            Preset(64, 64, 9, 2, 2), 3.0, 5.0, wan_graph, wan_diffusers,
        ),
        "ltxv": Family(
            "ltxv", "LTX-Video 0.9.5 t2v", "LTXPipeline", 32, 8,
            MappingProxyType({"tiny": Preset(128, 128, 17, 8, 10)}),
            Preset(64, 64, 9, 2, 2), None, 3.0, ltxv_graph, ltxv_diffusers,
        ),
        "hunyuan_video": Family(
            "hunyuan_video", "HunyuanVideo t2v", "HunyuanVideoPipeline", 16, 4,
            MappingProxyType({"tiny": Preset(128, 128, 17, 8, 10)}),
            Preset(64, 64, 9, 2, 2), 7.0, 1.0, hunyuan_graph, hunyuan_diffusers,
        ),
        "mochi": Family(
            "mochi", "Mochi preview t2v", "MochiPipeline", 16, 6,
            MappingProxyType({"tiny": Preset(128, 128, 13, 8, 10)}),
            Preset(64, 64, 7, 2, 2), 1.0, 4.5, mochi_graph, mochi_diffusers,
        ),
    }
)  # fmt: skip
"""The benchmarked families by ``--families`` name, in report order."""
