"""What the CogVideoX family contributes to the generic loaders: its transformers and VAEs from diffusers pipeline
folders (THUDM/CogVideoX-2b, -5b, -5b-I2V, CogVideoX1.5-5B, -5B-I2V; alibaba-pai/CogVideoX-Fun-V1.1-*-Control, whose
transformer config marks it a control model, in folders naming ``CogVideoXPipeline`` as released or
``CogVideoXFunControlPipeline`` as diffusers saves that pipeline). The releases ship no single files in an original
layout of their own, so single files never match."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import torch

from models.errors import StateDictError
from models.families.cogvideox.adapter import CogVideoXAdapter
from models.families.cogvideox.latents import latent_format_from_config
from models.families.cogvideox.sampling import sampling_from_scheduler_config
from models.families.cogvideox.spec import cogvideox_spec_from_config
from models.families.kinds import PipelineLayout, TransformerFamily, VaeFamily
from models.text_encoders.kinds import COGVIDEOX_TEXT

__all__ = ["COGVIDEOX_PIPELINES", "COGVIDEOX_TRANSFORMERS", "COGVIDEOX_VAES"]

FOLDERS_ONLY = "CogVideoX loads from diffusers pipeline folders only (put the folder in models/diffusers)"


def _no_single_file(_tensors: Mapping[str, torch.Tensor]) -> bool:
    return False


def _refuse(*_args: Any) -> NoReturn:
    raise StateDictError(FOLDERS_ONLY)


def _adapter_from_config(config: Mapping[str, Any]) -> CogVideoXAdapter:
    return CogVideoXAdapter(cogvideox_spec_from_config(config))


COGVIDEOX_TRANSFORMERS = TransformerFamily(
    name="cogvideox",
    label="a CogVideoX diffusion model",
    matches=_no_single_file,
    detect=_refuse,
    build=_refuse,
    adapter_from_config=_adapter_from_config,
    diffusers_classes=("CogVideoXTransformer3DModel",),
)
COGVIDEOX_VAES = VaeFamily(
    name="cogvideox",
    label="a CogVideoX VAE",
    matches=_no_single_file,
    latent_format=_refuse,
    build=_refuse,
    latent_format_from_config=latent_format_from_config,
    diffusers_classes=("AutoencoderKLCogVideoX",),
)
COGVIDEOX_PIPELINES = PipelineLayout(
    pipelines=("CogVideoXPipeline", "CogVideoXImageToVideoPipeline", "CogVideoXFunControlPipeline"),
    transformer=COGVIDEOX_TRANSFORMERS,
    vae=COGVIDEOX_VAES,
    text=COGVIDEOX_TEXT,
    sampling_from_scheduler=sampling_from_scheduler_config,
)
