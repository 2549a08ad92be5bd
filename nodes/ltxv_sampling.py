"""LTX-Video sampling nodes in ComfyUI's vocabulary: the resolution-dependent schedule (``LTXVScheduler``) and flow
shift (``ModelSamplingLTXV``), and the latent upsampler of the two-pass workflows (``LatentUpscaleModelLoader``,
``LTXVLatentUpsampler``: a sampled latent upscaled 2x in latent space, to be refined by a second sampler)."""

from __future__ import annotations

import math
from typing import Any

import torch

from graph.context import current_context
from models.diffusion_model import DiffusionModel
from models.families.ltx.latents import LTXV_LATENT
from models.families.ltx.schedule import BASE_SHIFT, DEFAULT_TOKENS, MAX_SHIFT, TERMINAL, ltxv_shift, ltxv_sigmas
from models.families.ltx.upsampler import (
    upsample_latent,
)
from models.memory import MODELS_SERVICE
from models.model_loaders import LatentUpscaleModel, load_latent_upscale_model
from models.sampling.model_sampling import FlowSampling
from models.video_vae import VideoVAE
from nodes.latent import latent_samples
from nodes.model_files import ModelFolderBound, resolve_model_file

MAX_STEPS = 10000
UPSCALE_FOLDER = "latent_upscale_models"


def _shift_inputs() -> dict[str, Any]:
    return {
        "max_shift": (
            "FLOAT",
            {
                "default": MAX_SHIFT,
                "min": 0.0,
                "max": 100.0,
                "step": 0.01,
                "tooltip": "The shift (log scale) at 4096 latent tokens.",
            },
        ),
        "base_shift": (
            "FLOAT",
            {
                "default": BASE_SHIFT,
                "min": 0.0,
                "max": 100.0,
                "step": 0.01,
                "tooltip": "The shift (log scale) at 1024 latent tokens.",
            },
        ),
    }


LATENT_OPTION = {
    "latent": ("LATENT", {"tooltip": "The latent to size the shift for (without: 4096 tokens, 768x512x41 or so)."})
}


def _tokens(latent: dict[str, Any] | None) -> int:
    """Latent tokens (frames x height x width) of ``latent``, or ComfyUI's 4096 without one."""
    if latent is None:
        return DEFAULT_TOKENS
    return math.prod(latent_samples(latent, "latent").shape[2:])


def _overflow(max_shift: float, base_shift: float, tokens: int) -> ValueError:
    return ValueError(
        f"max_shift: {max_shift} (base_shift {base_shift}) gives a shift beyond floating point at {tokens} latent "
        "tokens; use a smaller max_shift"
    )


class LTXVScheduler:
    """LTX-Video's sigmas: shifted by the latent's token count and stretched to end at ``terminal``."""

    FUNCTION = "get_sigmas"
    CATEGORY = "sampling/custom_sampling/schedulers"
    RETURN_TYPES = ("SIGMAS",)
    DESCRIPTION = (
        "The noise levels LTX-Video samples with: a flow shift growing with the latent's size, the last level "
        "stretched to the terminal value (as LTXPipeline's scheduler gives them)."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "steps": ("INT", {"default": 20, "min": 1, "max": MAX_STEPS}),
                **_shift_inputs(),
                "stretch": ("BOOLEAN", {"default": True, "tooltip": "Stretch the sigmas to the range [terminal, 1]."}),
                "terminal": (
                    "FLOAT",
                    {
                        "default": TERMINAL,
                        "min": 0.0,
                        "max": 0.99,
                        "step": 0.01,
                        "tooltip": "The last non-zero sigma after stretching.",
                    },
                ),
            },
            "optional": LATENT_OPTION,
        }

    def get_sigmas(
        self,
        steps: int,
        max_shift: float,
        base_shift: float,
        stretch: bool,
        terminal: float,
        latent: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor]:
        if steps < 1:
            raise ValueError(f"steps: {steps} must be at least 1")
        if not 0.0 <= terminal < 1.0:
            raise ValueError(f"terminal: {terminal} must be in [0, 1)")
        tokens = _tokens(latent)
        try:
            return (ltxv_sigmas(steps, max_shift, base_shift, stretch, terminal, tokens),)
        except OverflowError:
            raise _overflow(max_shift, base_shift, tokens) from None


class ModelSamplingLTXV:
    """The model's flow shift set for the latent's token count (LTX-Video's resolution-dependent shift)."""

    FUNCTION = "patch"
    CATEGORY = "advanced/model"
    RETURN_TYPES = ("MODEL",)
    DESCRIPTION = (
        "Sets an LTX-Video model's flow shift from the latent's size (base_shift at 1024 tokens, max_shift at "
        "4096, linear in between and beyond); schedulers that read the model's sampling use it."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"model": ("MODEL", {}), **_shift_inputs()}, "optional": LATENT_OPTION}

    def patch(
        self, model: DiffusionModel, max_shift: float, base_shift: float, latent: dict[str, Any] | None = None
    ) -> tuple[DiffusionModel]:
        tokens = _tokens(latent)
        try:
            shift = ltxv_shift(tokens, base_shift, max_shift)
        except OverflowError:
            raise _overflow(max_shift, base_shift, tokens) from None
        return (model.with_sampling(FlowSampling(shift=shift, multiplier=1000.0)),)


class LatentUpscaleModelLoader(ModelFolderBound):
    """A latent upscale model file (LTX-Video's spatial upsampler)."""

    FUNCTION = "load_model"
    CATEGORY = "loaders"
    RETURN_TYPES = ("LATENT_UPSCALE_MODEL",)
    DESCRIPTION = "Loads a latent upscale model (LTX-Video's latent upsampler) from the latent_upscale_models folder."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"model_name": cls.model_input(UPSCALE_FOLDER, "The latent upscale model file.")}}

    def load_model(self, model_name: str) -> tuple[LatentUpscaleModel]:
        manager = current_context().service(MODELS_SERVICE)
        return (load_latent_upscale_model(manager, resolve_model_file(UPSCALE_FOLDER, model_name, "model_name")),)


class LTXVLatentUpsampler:
    """A sampled LTX-Video latent upscaled 2x in latent space (the first half of a two-pass workflow)."""

    FUNCTION = "upsample_latent"
    CATEGORY = "latent/video"
    RETURN_TYPES = ("LATENT",)
    DESCRIPTION = (
        "Upscales an LTX-Video latent with a latent upsampler: 2x width and height (spatial), 2x frames less one "
        "(temporal), or both; the VAE gives the latent statistics it works in. The noise mask is dropped: sample "
        "the result again to refine it."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "samples": ("LATENT", {}),
                "upscale_model": ("LATENT_UPSCALE_MODEL", {}),
                "vae": ("VAE", {"tooltip": "The LTX-Video VAE the latent was made with."}),
            }
        }

    def upsample_latent(
        self, samples: dict[str, Any], upscale_model: LatentUpscaleModel, vae: VideoVAE
    ) -> tuple[dict[str, Any]]:
        latent = latent_samples(samples, "samples")
        LTXV_LATENT.check(latent, "samples")
        if not isinstance(upscale_model, LatentUpscaleModel):
            raise ValueError(f"upscale_model: not a latent upscale model ({type(upscale_model).__name__})")
        if getattr(vae, "latent_format", None) != LTXV_LATENT:
            raise ValueError(f"vae: an LTX-Video VAE is needed, got {getattr(vae, 'name', type(vae).__name__)!r}")
        with vae.handle.use() as autoencoder, upscale_model.handle.use() as upsampler, torch.no_grad():
            upsampled = upsample_latent(upsampler, autoencoder, latent).to("cpu", torch.float32)
        result = {key: value for key, value in samples.items() if key != "noise_mask"}
        result["samples"] = upsampled
        return (result,)


NODE_CLASS_MAPPINGS = {
    "LTXVScheduler": LTXVScheduler,
    "ModelSamplingLTXV": ModelSamplingLTXV,
    "LatentUpscaleModelLoader": LatentUpscaleModelLoader,
    "LTXVLatentUpsampler": LTXVLatentUpsampler,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LTXVScheduler": "LTXVScheduler",
    "ModelSamplingLTXV": "ModelSamplingLTXV",
    "LatentUpscaleModelLoader": "Load Latent Upscale Model",
    "LTXVLatentUpsampler": "LTXVLatentUpsampler",
}
