"""The image-model and diffusion-forcing video families ``bench/sampling.py`` compares (issue 10), on the
``models/tiny`` stand-ins, each our graph against the diffusers pipeline call doing the same work:

- ``svd``: ``ImageOnlyCheckpointLoader``, ``EmptyImage`` (a flat colour, 224x224), ``SVD_img2vid_Conditioning``,
  ``VideoLinearCFGGuidance`` and ``KSampler`` (euler, karras) against ``StableVideoDiffusionPipeline`` (the release's
  Karras-sigma Euler scheduler) given the same picture as a tensor. At 224x224 neither side resizes it for the CLIP
  tower, and a flat picture is unchanged by either side's resizing to the video's size for the VAE.
- ``animatediff``: ``CheckpointLoaderSimple`` (SD1.5), ``AnimateDiffLoader`` (v2 motion module),
  ``AnimateDiffApply``, ``EmptyAnimateDiffLatent`` and ``KSampler`` (euler, simple) against ``AnimateDiffPipeline``
  (Euler, trailing spacing: the same timesteps when the steps divide the 1000 training steps; ``simple`` floors the
  stride where ``trailing`` rounds it, so keep ``--steps`` a divisor of 1000 for ``animatediff`` and ``cogvideox``).
- ``cogvideox``: ``DiffusersPipelineLoader`` (CogVideoX-2b), ``EmptyCogVideoXLatentVideo``, ``KSampler`` (euler,
  simple) and ``TrimVideoLatent`` against ``CogVideoXPipeline`` (its DDIM scheduler), both from the same folder;
  frames 1 + a multiple of 8 (an odd number of latent frames, which the VAE decodes to that many frames).
- ``skyreels_df``: ``UNETLoader`` (the DF 1.3B single file), ``CLIPLoader`` (wan), ``VAELoader`` and
  ``SkyReelsDiffusionForcingSampler`` (synchronous) against ``SkyReelsV2DiffusionForcingPipeline`` (UniPC, flow
  shift 8) from the tiny ``*-Diffusers`` folder.

Where the pipelines draw their noise in another axis order or scale (SVD, CogVideoX: ``[B, F, C, H, W]``; SVD also
scaled by ``init_noise_sigma``), they get our ``Noise(seed)`` draw as ``latents`` every call.

diffusers cannot load two of the single files, so those pipelines are built from the modules our loaders' converters
(diffusers' ``convert_ldm_*`` where it has them) make of the same files: ``svd_xt.safetensors`` (diffusers has no
single-file loading of SVD's SGM layout) and the SD1.5 checkpoint with the motion module (``from_single_file`` needs
the release's config from the Hub, and the tiny networks are not release-shaped).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from bench.sampling_families import (
    NEGATIVE,
    PROMPT,
    RUN_NODES,
    SAMPLER_NODE,
    DiffusersCall,
    Family,
    Preset,
    Settings,
    _described,
    _ksampler,
    _latent,
    _tail,
    _text,
)
from bench.sampling_models import ModelSet, describe_pipeline, load_family_pipeline
from models.clip_vision import clip_vision_from_state_dict
from models.families.animatediff.motion_checkpoint import motion_adapter_from_state_dict
from models.families.sd15.text_encoder import sd_clip_text_from_state_dict
from models.families.sd15.unet_checkpoint import sd15_unet_from_state_dict
from models.families.sd15.vae_checkpoint import sd15_vae_from_state_dict
from models.families.single_file import key_prefix, unprefixed
from models.families.svd.unet_checkpoint import svd_unet_from_state_dict
from models.families.svd.vae_checkpoint import svd_vae_from_state_dict
from models.loading import load_state_dict
from models.noise import Noise
from models.text_encoders.kinds import CLIP_L_TOKENIZER
from models.tiny import animatediff as tiny_animatediff
from models.tiny import svd as tiny_svd
from models.tiny.skyreels import DF_FILE

__all__ = ["MORE_FAMILIES"]

SVD_COLOR = 0x3366CC  # the flat start picture
SVD_PICTURE = 224  # its width and height: the CLIP tower's image size
SVD_MIN_CFG = 1.0  # VideoLinearCFGGuidance's min_cfg, the pipeline's min_guidance_scale
SVD_FPS = 7  # SVD_img2vid_Conditioning's fps, the pipeline's fps
SVD_MOTION_BUCKET = 127
SVD_SCHEDULER: Mapping[str, Any] = MappingProxyType(
    {  # stabilityai/stable-video-diffusion-img2vid-xt scheduler_config.json
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "interpolation_type": "linear",
        "num_train_timesteps": 1000,
        "prediction_type": "v_prediction",
        "sigma_max": 700.0,
        "sigma_min": 0.002,
        "steps_offset": 1,
        "timestep_spacing": "leading",
        "timestep_type": "continuous",
        "use_karras_sigmas": True,
    }
)
CLIP_VISION_IDENTITY = ("visual.conv1.weight", "visual.class_embedding")  # open_clip's tower, under any prefix
ANIMATEDIFF_SCHEDULER: Mapping[str, Any] = MappingProxyType(
    {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "timestep_spacing": "trailing"}
)
COGVIDEOX_FOLDER = "CogVideoX-2b"
COGVIDEOX_MAX_SEQUENCE_LENGTH = 226  # T5 tokens, CogVideoXPipeline's default
SKYREELS_DF_FOLDER = "SkyReels-V2-DF-1.3B-540P-Diffusers"
SKYREELS_MAX_SEQUENCE_LENGTH = 512  # UMT5 tokens, as Wan's
SKYREELS_FORCING: Mapping[str, Any] = MappingProxyType(
    {"base_num_frames": 97, "ar_step": 0, "causal_block_size": 1, "addnoise_condition": 0.0, "fps": 24}
)
"""Synchronous diffusion forcing in one pass: every frame at the same noise level, the video shorter than a chunk."""


def _file_name(folder_and_name: str) -> str:
    """The node input naming a file in its model folder (``checkpoints/svd_xt.safetensors`` -> its last part)."""
    return Path(folder_and_name).name


def _noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Our initial noise for ``seed``, ``[B, C, F, H, W]`` as our latents are."""
    noise, _ = Noise(seed).draw(torch.empty(shape))
    return noise


# ----- Stable Video Diffusion --------------------------------------------------------------------------------------


def svd_graph(models: ModelSet, settings: Settings, seed: int) -> dict[str, Any]:
    """SVD image-to-video from a flat picture, as ComfyUI's workflow: linear CFG over the frames, Karras sigmas."""
    size = {"width": settings.width, "height": settings.height}
    picture = {"width": SVD_PICTURE, "height": SVD_PICTURE}
    conditioning = {
        "clip_vision": ["checkpoint", 1],
        "init_image": ["image", 0],
        "vae": ["checkpoint", 2],
        **size,
        "video_frames": settings.frames,
        "motion_bucket_id": SVD_MOTION_BUCKET,
        "fps": SVD_FPS,
        "augmentation_level": 0.0,
    }
    sampler = _ksampler(["guidance", 0], settings, seed, "karras", ["conditioning", 0], ["conditioning", 1])
    sampler["inputs"]["latent_image"] = ["conditioning", 2]
    checkpoint = {"ckpt_name": _file_name(tiny_svd.CHECKPOINT_FILE)}
    return {
        "checkpoint": {"class_type": "ImageOnlyCheckpointLoader", "inputs": checkpoint},
        "guidance": {"class_type": "VideoLinearCFGGuidance", "inputs": {"model": ["checkpoint", 0], "min_cfg": 1.0}},
        "image": {"class_type": "EmptyImage", "inputs": {**picture, "batch_size": 1, "color": SVD_COLOR}},
        "conditioning": {"class_type": "SVD_img2vid_Conditioning", "inputs": conditioning},
        SAMPLER_NODE: sampler,
        **_tail(["checkpoint", 2]),
    }


def _flat_picture(color: int) -> torch.Tensor:
    """``[1, 3, 224, 224]`` in 0..1, contiguous: the picture ``EmptyImage`` makes for ``color`` at the CLIP tower's
    size, which the pipeline, given a tensor, feeds to the tower unresized (as ``CLIPVisionEncode`` does at that size).

    Not a PIL image: the pipeline would encode it for the VAE channels-last, and a flat picture leaves the VAE's
    first GroupNorm almost no variance, so the channels-last kernel's rounding differs in the first digits."""
    rgb = torch.tensor([(color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF], dtype=torch.float32) / 255.0
    return rgb.view(1, 3, 1, 1).expand(1, 3, SVD_PICTURE, SVD_PICTURE).contiguous()


def svd_diffusers(models: ModelSet, settings: Settings, device: torch.device, dtype: torch.dtype) -> DiffusersCall:
    """``StableVideoDiffusionPipeline`` over the UNet, VAE and CLIP vision tower our converters make of
    ``svd_xt.safetensors`` (diffusers cannot load it), the release's scheduler; ``latents`` our noise, reordered
    to ``[B, F, C, H, W]`` and scaled from our ``sigma_max`` to the pipeline's ``init_noise_sigma``."""
    from diffusers import EulerDiscreteScheduler, StableVideoDiffusionPipeline
    from transformers import CLIPImageProcessor

    state = load_state_dict(models.models_dir / tiny_svd.CHECKPOINT_FILE)
    prefix = key_prefix(state, *CLIP_VISION_IDENTITY)
    if prefix is None:
        raise ValueError(f"{tiny_svd.CHECKPOINT_FILE} holds no open_clip vision tower")
    pipeline = StableVideoDiffusionPipeline(
        vae=svd_vae_from_state_dict(state, dtype),
        image_encoder=clip_vision_from_state_dict(unprefixed(state, prefix), dtype),
        unet=svd_unet_from_state_dict(state, dtype),
        scheduler=EulerDiscreteScheduler(**SVD_SCHEDULER),
        feature_extractor=CLIPImageProcessor(),
    ).to(device)
    pipeline.set_progress_bar_config(disable=True)
    schedule = EulerDiscreteScheduler(**SVD_SCHEDULER)
    schedule.set_timesteps(settings.steps)
    scale = float(schedule.sigmas[0]) / float(schedule.init_noise_sigma)
    factor = pipeline.vae_scale_factor
    shape = (1, pipeline.unet.config.out_channels, settings.frames, settings.height // factor, settings.width // factor)

    def latents(seed: int) -> Mapping[str, Any]:
        return MappingProxyType({"latents": (_noise(seed, shape).transpose(1, 2) * scale).to(device)})

    kwargs = {
        "image": _flat_picture(SVD_COLOR),
        "min_guidance_scale": SVD_MIN_CFG,
        "max_guidance_scale": settings.cfg,
        "fps": SVD_FPS,
        "motion_bucket_id": SVD_MOTION_BUCKET,
        "noise_aug_strength": 0.0,
        "decode_chunk_size": settings.frames,
    }
    what = f"{models.size} random (models/tiny), converted from {tiny_svd.CHECKPOINT_FILE}"
    return DiffusersCall(pipeline, MappingProxyType(kwargs), describe_pipeline(pipeline, what), latents)


# ----- AnimateDiff -------------------------------------------------------------------------------------------------


def animatediff_graph(models: ModelSet, settings: Settings, seed: int) -> dict[str, Any]:
    """AnimateDiff v2 on SD1.5 text-to-video: one context window (the whole video), CLIP from the checkpoint."""
    apply = {
        "model": ["checkpoint", 0],
        "motion_model": ["motion", 0],
        "context_length": 0,
        "context_stride": 4,
        "context_weighting": "pyramid",
    }
    checkpoint = {"ckpt_name": _file_name(tiny_animatediff.CHECKPOINT_FILE)}
    return {
        "checkpoint": {"class_type": "CheckpointLoaderSimple", "inputs": checkpoint},
        "motion": {
            "class_type": "AnimateDiffLoader",
            "inputs": {"model_name": _file_name(tiny_animatediff.MOTION_V2_FILE)},
        },
        "animate": {"class_type": "AnimateDiffApply", "inputs": apply},
        "positive": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["checkpoint", 1], "text": PROMPT}},
        "negative": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["checkpoint", 1], "text": NEGATIVE}},
        "latent": _latent("EmptyAnimateDiffLatent", settings),
        SAMPLER_NODE: _ksampler(["animate", 0], settings, seed, "simple", ["positive", 0], ["negative", 0]),
        **_tail(["checkpoint", 2]),
    }


def animatediff_diffusers(
    models: ModelSet, settings: Settings, device: torch.device, dtype: torch.dtype
) -> DiffusersCall:
    """``AnimateDiffPipeline`` over the UNet, VAE and CLIP-L our converters (diffusers' ``convert_ldm_*``) make of the
    SD1.5 checkpoint and the ``MotionAdapter`` of the motion module (diffusers' ``from_single_file`` needs the
    release's config from the Hub); the pipeline joins them as diffusers does (``UNetMotionModel.from_unet2d``)."""
    from diffusers import AnimateDiffPipeline, EulerDiscreteScheduler
    from transformers import AutoTokenizer

    state = load_state_dict(models.models_dir / tiny_animatediff.CHECKPOINT_FILE)
    motion = load_state_dict(models.models_dir / tiny_animatediff.MOTION_V2_FILE)
    tokenizer_dir = models.models_dir / "tokenizers" / CLIP_L_TOKENIZER
    pipeline = AnimateDiffPipeline(
        vae=sd15_vae_from_state_dict(state, dtype),
        text_encoder=sd_clip_text_from_state_dict(state, dtype),
        tokenizer=AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True),
        unet=sd15_unet_from_state_dict(state, dtype),
        motion_adapter=motion_adapter_from_state_dict(motion, dtype),
        scheduler=EulerDiscreteScheduler(**ANIMATEDIFF_SCHEDULER),
    ).to(device)
    pipeline.set_progress_bar_config(disable=True)
    with torch.no_grad():
        positive, negative = pipeline.encode_prompt(PROMPT, device, 1, True, NEGATIVE)
    kwargs = {
        "prompt_embeds": positive,
        "negative_prompt_embeds": negative,
        "guidance_scale": settings.cfg,
        "decode_chunk_size": settings.frames,
    }
    files = f"{tiny_animatediff.CHECKPOINT_FILE} and {tiny_animatediff.MOTION_V2_FILE}"
    what = f"{models.size} random (models/tiny), converted from {files}"
    return DiffusersCall(pipeline, MappingProxyType(kwargs), describe_pipeline(pipeline, what))


# ----- CogVideoX ---------------------------------------------------------------------------------------------------


def cogvideox_graph(models: ModelSet, settings: Settings, seed: int) -> dict[str, Any]:
    """CogVideoX-2b text-to-video from the diffusers folder; the latent's padding frames trimmed before decoding."""
    loader = {"model_path": COGVIDEOX_FOLDER, "transformer": "transformer", "weight_dtype": "default"}
    latent = {"model": ["pipeline", 0], "width": settings.width, "height": settings.height}
    return {
        "pipeline": {"class_type": "DiffusersPipelineLoader", "inputs": loader},
        "positive": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["pipeline", 1], "text": PROMPT}},
        "negative": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["pipeline", 1], "text": NEGATIVE}},
        "latent": {
            "class_type": "EmptyCogVideoXLatentVideo",
            "inputs": {**latent, "length": settings.frames, "batch_size": 1},
        },
        SAMPLER_NODE: _ksampler(["pipeline", 0], settings, seed, "simple", ["positive", 0], ["negative", 0]),
        "trim": {
            "class_type": "TrimVideoLatent",
            "inputs": {"samples": [SAMPLER_NODE, 0], "trim_amount": ["latent", 1]},
        },
        **_tail(["pipeline", 2], ("trim", 0)),
    }


def cogvideox_diffusers(
    models: ModelSet, settings: Settings, device: torch.device, dtype: torch.dtype
) -> DiffusersCall:
    """``CogVideoXPipeline`` from the tiny CogVideoX-2b folder; ``latents`` our noise in its ``[B, F, C, H, W]``."""
    from diffusers import CogVideoXPipeline

    pipeline = load_family_pipeline(CogVideoXPipeline, models.folder(COGVIDEOX_FOLDER), dtype, device, ())
    with torch.no_grad():
        positive, negative = pipeline.encode_prompt(
            PROMPT,
            NEGATIVE,
            do_classifier_free_guidance=True,
            max_sequence_length=COGVIDEOX_MAX_SEQUENCE_LENGTH,
            device=device,
        )
    spatial, temporal = pipeline.vae_scale_factor_spatial, pipeline.vae_scale_factor_temporal
    latent_frames = (settings.frames - 1) // temporal + 1
    channels = pipeline.transformer.config.in_channels
    shape = (1, channels, latent_frames, settings.height // spatial, settings.width // spatial)

    def latents(seed: int) -> Mapping[str, Any]:
        return MappingProxyType({"latents": _noise(seed, shape).permute(0, 2, 1, 3, 4).to(device)})

    kwargs = {"prompt_embeds": positive, "negative_prompt_embeds": negative, "guidance_scale": settings.cfg}
    return DiffusersCall(pipeline, MappingProxyType(kwargs), _described(pipeline, models), latents)


# ----- SkyReels-V2 diffusion forcing -------------------------------------------------------------------------------


def skyreels_df_graph(models: ModelSet, settings: Settings, seed: int) -> dict[str, Any]:
    """SkyReels-V2 DF 1.3B text-to-video with the diffusion-forcing sampler (synchronous, one pass)."""
    sampler = {
        "model": ["unet", 0],
        "positive": ["positive", 0],
        "negative": ["negative", 0],
        "latent_image": ["latent", 0],
        "seed": seed,
        "steps": settings.steps,
        "cfg": settings.cfg,
        "shift": settings.shift,
        "overlap_history": 0,
        **SKYREELS_FORCING,
    }
    return {
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": DF_FILE, "weight_dtype": "default"}},
        **_text({"class_type": "CLIPLoader", "inputs": {"clip_name": models.text_encoder, "type": "wan"}}),
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": models.vae}},
        "latent": _latent("EmptyHunyuanLatentVideo", settings),
        SAMPLER_NODE: {"class_type": "SkyReelsDiffusionForcingSampler", "inputs": sampler},
        **_tail(["vae", 0]),
    }


def skyreels_df_diffusers(
    models: ModelSet, settings: Settings, device: torch.device, dtype: torch.dtype
) -> DiffusersCall:
    """``SkyReelsV2DiffusionForcingPipeline`` from the tiny DF 1.3B folder (UniPC, flow shift 8); it draws the same
    noise from the seed's generator as our sampler."""
    from diffusers import SkyReelsV2DiffusionForcingPipeline

    folder = models.folder(SKYREELS_DF_FOLDER)
    pipeline = load_family_pipeline(SkyReelsV2DiffusionForcingPipeline, folder, dtype, device, ("text_encoder",))
    with torch.no_grad():
        positive, negative = pipeline.encode_prompt(
            PROMPT,
            NEGATIVE,
            do_classifier_free_guidance=True,
            max_sequence_length=SKYREELS_MAX_SEQUENCE_LENGTH,
            device=device,
        )
    kwargs = {
        "prompt": None,  # a required argument of this pipeline's call, even with embeddings
        "prompt_embeds": positive,
        "negative_prompt_embeds": negative,
        "guidance_scale": settings.cfg,
        "overlap_history": None,
        **SKYREELS_FORCING,
    }
    return DiffusersCall(pipeline, MappingProxyType(kwargs), _described(pipeline, models))


MORE_FAMILIES: Mapping[str, Family] = MappingProxyType(
    {
        "svd": Family(
            "svd", "Stable Video Diffusion XT i2v", "StableVideoDiffusionPipeline", 16, 1,
            MappingProxyType({"tiny": Preset(64, 64, 6, 5, 5)}),
            Preset(32, 32, 3, 3, 2), None, 2.5, svd_graph, svd_diffusers,  # 2 steps: one leap from sigma 700
            schedule="karras (sigma 700..0.002), linear cfg 1..max over the frames",
        ),
        "animatediff": Family(
            "animatediff", "AnimateDiff v2 (SD1.5) t2v", "AnimateDiffPipeline", 16, 1,
            MappingProxyType({"tiny": Preset(64, 64, 8, 5, 5)}),
            Preset(32, 32, 4, 2, 2), None, 7.5, animatediff_graph, animatediff_diffusers,
            schedule="simple (Euler, trailing timesteps)",
        ),
        "cogvideox": Family(
            "cogvideox", "CogVideoX-2b t2v", "CogVideoXPipeline", 16, 8,
            MappingProxyType({"tiny": Preset(64, 64, 9, 5, 5)}),
            Preset(32, 32, 9, 2, 2), None, 6.0, cogvideox_graph, cogvideox_diffusers,
            schedule="simple (DDIM v-prediction, trailing, snr shift 3)",
            run_nodes=(SAMPLER_NODE, "trim", *RUN_NODES[1:]),
        ),
        "skyreels_df": Family(
            "skyreels_df", "SkyReels-V2 DF 1.3B t2v (synchronous)", "SkyReelsV2DiffusionForcingPipeline", 16, 4,
            MappingProxyType({"tiny": Preset(64, 64, 17, 5, 5)}),
            Preset(32, 32, 5, 2, 2), 8.0, 5.0, skyreels_df_graph, skyreels_df_diffusers,
            sampler="UniPC (diffusion forcing)",
        ),
    }
)  # fmt: skip
"""The issue-10 families by ``--families`` name, in report order."""
