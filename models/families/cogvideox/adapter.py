"""The CogVideoX family adapter: how ``CogVideoXTransformer3DModel`` is called, exactly as ``CogVideoXPipeline`` and
``CogVideoXImageToVideoPipeline`` call it.

Conditioning: T5-XXL embeddings ``[1, 226, 4096]`` (no mask: the network attends to the padding too). Image-to-video
models also need ``IMAGE_LATENTS`` (``CogVideoXImageToVideo``): ``[1, C, T, H, W]`` in the network's space, the start
image's latent then zeros, concatenated to the noise on the channels. CogVideoX-Fun control models need
``CONTROL_LATENTS`` (``CogVideoXFunControl``) instead: the control video's latents, ``[1, C, T, H, W]`` in the
network's space, concatenated to the noise on the channels as ``CogVideoXFunControlPipeline`` does.

The network takes ``[B, F, C, H, W]``; the adapter permutes our ``[B, C, T, H, W]`` to it and back. Rotary position
embeddings (5B and 1.5) are ``get_3d_rotary_pos_embed`` over the latent grid as the pipelines'
``_prepare_rotary_positional_embeddings``; CogVideoX 1.5 patches two frames at once, so its latents need an even
frame count (the pipelines pad one frame in front: ``EmptyCogVideoXLatentVideo`` does the same), and its
image-to-video model gets the ``ofs`` embedding input 2.0 as the pipeline gives it.
"""

from __future__ import annotations

import torch

from models.families.base import (
    ConditioningEntry,
    FamilyAdapter,
    LatentShapeError,
    NetworkCall,
    batched,
    check_text_embeddings,
)
from models.families.cogvideox.latents import CogVideoXLatentFormat, latent_format_from_config
from models.families.cogvideox.sampling import default_sampling
from models.families.cogvideox.spec import CogVideoXTransformerSpec
from models.memory_types import WorkEstimate
from models.offload_policy import estimate_activation_bytes
from models.sampling.model_sampling import ModelSampling

__all__ = ["CONTROL_LATENTS", "IMAGE_LATENTS", "OFS", "CogVideoXAdapter", "rotary_embeddings"]

IMAGE_LATENTS = "cogvideox_image_latents"
"""The conditioning extra holding an image-to-video model's image latents (the network's space)."""
CONTROL_LATENTS = "cogvideox_control_latents"
"""The conditioning extra holding a CogVideoX-Fun control model's control video latents (the network's space)."""
SCALING_2B = 1.15258426
SCALING_5B = 0.7
"""The VAE scaling factors the releases pair with their transformers: 2B's (no rotary embeddings), and the 5B and
1.5 models'. The transformer config does not hold it; the latent statistics follow from it."""
OFS = 2.0
"""The ``ofs`` value ``CogVideoXImageToVideoPipeline`` feeds models with an ofs embedding (CogVideoX 1.5 i2v)."""


def rotary_embeddings(
    spec: CogVideoXTransformerSpec, frames: int, height: int, width: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotary ``(cos, sin)`` of a latent of ``frames`` x ``height`` x ``width``, as the pipelines'
    ``_prepare_rotary_positional_embeddings`` computes them for its pixel size."""
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

    config = spec.config
    patch = spec.patch_size
    grid = (height // patch, width // patch)
    base_width, base_height = int(config["sample_width"]) // patch, int(config["sample_height"]) // patch
    head_dim = int(config["attention_head_dim"])
    if spec.patch_size_t is None:
        crops = get_resize_crop_region_for_grid(grid, base_width, base_height)
        return get_3d_rotary_pos_embed(
            embed_dim=head_dim, crops_coords=crops, grid_size=grid, temporal_size=frames, device=device
        )
    return get_3d_rotary_pos_embed(
        embed_dim=head_dim,
        crops_coords=None,
        grid_size=grid,
        temporal_size=(frames + spec.patch_size_t - 1) // spec.patch_size_t,
        grid_type="slice",
        max_size=(base_height, base_width),
        device=device,
    )


class CogVideoXAdapter(FamilyAdapter):
    """One CogVideoX transformer (from a diffusers config)."""

    family = "cogvideox"

    def __init__(self, spec: CogVideoXTransformerSpec) -> None:
        self.spec = spec
        config = spec.config
        channels = spec.latent_channels
        scaling = SCALING_5B if config["use_rotary_positional_embeddings"] else SCALING_2B
        self.latent_format: CogVideoXLatentFormat = latent_format_from_config(
            {"latent_channels": channels, "scaling_factor": scaling}
        )
        self.text_dim = int(config["text_embed_dim"])
        self.text_length = int(config["max_text_seq_length"])
        if spec.takes_latents_beside_noise and int(config["in_channels"]) != 2 * channels:
            raise LatentShapeError(f"{spec.describe()}: {config['in_channels']} input channels for {channels} out")

    def describe(self) -> str:
        return self.spec.describe()

    def default_sampling(self) -> ModelSampling:
        return default_sampling(self.spec)

    def padding_frames(self, latent_frames: int) -> int:
        """The latent frames CogVideoX 1.5 puts in front of ``latent_frames`` to make whole temporal patches."""
        patch_t = self.spec.patch_size_t
        return 0 if patch_t is None else -latent_frames % patch_t

    def check_conditioning(self, entry: ConditioningEntry, samples: torch.Tensor) -> None:
        embeds, extras = entry
        describe = self.describe()
        check_text_embeddings(
            embeds,
            samples,
            self.text_dim,
            describe,
            "T5 embeddings: was it encoded by another family's text encoder? load the T5-XXL with CLIPLoader type "
            "cogvideox, or the pipeline folder's own",
        )
        if self.spec.adds_position_embeddings and embeds.shape[1] != self.text_length:
            raise LatentShapeError(
                f"the text conditioning has {embeds.shape[1]} tokens; {describe} places its positions after exactly "
                f"{self.text_length} (encode with CLIPLoader type cogvideox)"
            )
        self._check_latent(samples)
        self._check_image(extras.get(IMAGE_LATENTS), samples)
        self._check_control(extras.get(CONTROL_LATENTS), samples)

    def _check_latent(self, samples: torch.Tensor) -> None:
        frames, height, width = samples.shape[2:]
        patch, patch_t = self.spec.patch_size, self.spec.patch_size_t
        if height % patch or width % patch:
            raise LatentShapeError(
                f"the latent is {height}x{width}; {self.describe()} takes {patch}x{patch} patches, so the video's "
                f"width and height must be multiples of {patch * self.latent_format.spatial_ratio}"
            )
        if patch_t is not None and frames % patch_t:
            raise LatentShapeError(
                f"the latent has {frames} frames; {self.describe()} patches {patch_t} frames at once and needs a "
                f"multiple of {patch_t} (EmptyCogVideoXLatentVideo and CogVideoXImageToVideo pad it)"
            )
        config = self.spec.config
        sample = (int(config["sample_height"]), int(config["sample_width"]))
        if config["use_learned_positional_embeddings"] and (height, width) != sample:
            raise LatentShapeError(
                f"the latent is {height}x{width}; {self.describe()} learned its positions for "
                f"{sample[0]}x{sample[1]} (a {sample[1] * 8}x{sample[0] * 8} video) only"
            )

    def _check_image(self, image: torch.Tensor | None, samples: torch.Tensor) -> None:
        if not self.spec.image_to_video:
            if image is not None:
                kind = "control" if self.spec.control else "text-to-video"
                raise ValueError(f"{self.describe()} is a {kind} model; it takes no start image")
            return
        if image is None:
            raise ValueError(
                f"{self.describe()} is an image-to-video model: condition it on a start image with "
                "CogVideoXImageToVideo"
            )
        expected = (self.latent_format.channels, *samples.shape[2:])
        if image.dim() != 5 or tuple(image.shape[1:]) != expected or image.shape[0] not in (1, samples.shape[0]):
            raise LatentShapeError(
                f"the start image latents have shape {tuple(image.shape)}; the latent needs [batch, "
                f"{', '.join(map(str, expected))}] (make both with the same CogVideoXImageToVideo)"
            )

    def _check_control(self, control: torch.Tensor | None, samples: torch.Tensor) -> None:
        describe = self.describe()
        if not self.spec.control:
            if control is not None:
                raise ValueError(
                    f"{describe} is not a control model; it takes no control video (CogVideoXFunControl is for "
                    "CogVideoX-Fun control models)"
                )
            return
        if control is None:
            raise ValueError(
                f"{describe} is a CogVideoX-Fun control model: condition it on a control video with CogVideoXFunControl"
            )
        expected = (self.latent_format.channels, *samples.shape[2:])
        if control.dim() != 5 or tuple(control.shape[1:]) != expected or control.shape[0] not in (1, samples.shape[0]):
            raise LatentShapeError(
                f"the control latents have shape {tuple(control.shape)}; the latent {tuple(samples.shape)} needs "
                f"[batch, {', '.join(map(str, expected))}] (make both with the same CogVideoXFunControl)"
            )

    def network_call(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        entry: ConditioningEntry,
        dtype: torch.dtype,
        denoise_mask: torch.Tensor | None = None,
    ) -> NetworkCall:
        embeds, extras = entry
        hidden = x
        beside = extras.get(CONTROL_LATENTS if self.spec.control else IMAGE_LATENTS)
        if self.spec.takes_latents_beside_noise and beside is not None:
            hidden = torch.cat([x, batched(beside, x).to(x.device, x.dtype)], dim=1)
        frames, height, width = x.shape[2:]
        rotary = None
        if self.spec.config["use_rotary_positional_embeddings"]:
            rotary = rotary_embeddings(self.spec, frames, height, width, x.device)
        ofs = None
        if self.spec.config["ofs_embed_dim"] is not None:
            ofs = torch.full((1,), OFS, device=x.device, dtype=dtype)
        per_sample = {
            "hidden_states": hidden.permute(0, 2, 1, 3, 4).to(dtype),
            "encoder_hidden_states": batched(embeds, x).to(x.device, dtype),
            "timestep": timestep.to(x.device),
        }
        return NetworkCall(per_sample, {"ofs": ofs, "image_rotary_emb": rotary})

    def network_output(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return output.permute(0, 2, 1, 3, 4).float()

    def work_estimate(self, samples: torch.Tensor, streams: int) -> WorkEstimate:
        batch, _, frames, height, width = samples.shape
        fmt = self.latent_format
        activation = estimate_activation_bytes(
            "transformer",
            width * fmt.spatial_ratio,
            height * fmt.spatial_ratio,
            (frames - 1) * fmt.temporal_ratio + 1,
            batch=batch * streams,
            hidden_size=self.spec.hidden_size,
            patch_size=(self.spec.patch_size_t or 1, self.spec.patch_size, self.spec.patch_size),
            spatial_ratio=fmt.spatial_ratio,
            temporal_ratio=fmt.temporal_ratio,
        )
        return WorkEstimate(activation)
