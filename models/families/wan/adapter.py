"""The Wan family adapter: how Wan 2.1 / 2.2 transformers are called and what their latents look like.

Conditioning extras it reads (ComfyUI's names, set by ``WanImageToVideo`` and friends):

- ``concat_latent_image``: a raw VAE latent ``[1|B, 16, T, h, w]`` of the frames to keep (gray elsewhere);
- ``concat_mask``: ``[1|B, 1, T or 4T, h', w']``, 1 where frames are generated, 0 where the image is kept (at latent
  frame resolution, or at video frame resolution with the first frame counted four times, as the VAE codes it);
- ``clip_vision_output``: a ``ClipVisionOutput`` whose penultimate hidden states feed the image cross-attention of
  models that have one (2.1 i2v and first-last-frame).

- ``vace_control``: VACE models' control input ``[1|B, 96, T, h, w]`` (normalised latents of the control video's
  inactive and reactive parts, then the 8x8-unshuffled mask), with ``vace_strength`` scaling every hint (set by
  ``WanVaceToVideo``, as diffusers' ``WanVACEPipeline`` builds them).

Image-to-video models get ``[x, keep mask (4 channels), image latent]`` on the channel axis, as diffusers'
``WanImageToVideoPipeline`` builds it. Fun control models (48 input channels) get ``[x, control video latent, start
image latent]`` instead, from a 32-channel ``concat_latent_image`` (``WanFunControlToVideo``), with no mask; Fun
camera models (32) get ``[x, start image latent]`` and ``camera_conditions`` (``WanCameraImageToVideo``) as the
network's ``camera_embedding``.
The 2.2 TI2V 5B model instead keeps its start frame in the latent itself
(``Wan22ImageToVideoLatent``'s noise mask): that region stays clean and its tokens get timestep 0, as diffusers'
``expand_timesteps`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from models.families.base import (
    ConditioningEntry,
    FamilyAdapter,
    LatentFormat,
    LatentShapeError,
    NetworkCall,
    batched,
    check_text_embeddings,
)
from models.families.wan.camera import CAMERA_CHANNELS
from models.families.wan.checkpoint import WanTransformerSpec
from models.families.wan.latents import latent_format_for_channels
from models.memory_types import WorkEstimate
from models.offload_policy import estimate_activation_bytes
from models.sampling.model_sampling import FlowSampling, ModelSampling

__all__ = ["DEFAULT_SHIFT", "VACE_CONTROL", "WanAdapter"]

DEFAULT_SHIFT = 5.0
"""The flow shift of the published Wan sampling settings (text-to-video 14B and 5B); ``ModelSamplingSD3`` sets
another."""

MASK_CHANNELS = 4  # the VAE codes four frames per latent frame: one keep-mask channel each
VACE_CONTROL = "vace_control"
"""The conditioning extra holding a VACE model's control latents and mask (``WanVaceToVideo``; ComfyUI's key)."""


class WanAdapter(FamilyAdapter):
    """One Wan transformer variant (from ``detect_wan_transformer``)."""

    family = "wan"

    def __init__(self, spec: WanTransformerSpec) -> None:
        self.spec = spec
        config = spec.config
        self.latent_format: LatentFormat = latent_format_for_channels(int(config["out_channels"]))
        self.in_channels = int(config["in_channels"])
        self.concat_channels = self.in_channels - self.latent_format.channels
        self.image_dim = config.get("image_dim")
        self.patch_size = tuple(config["patch_size"])
        self.hidden_size = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
        allowed = (0, MASK_CHANNELS + self.latent_format.channels, self.latent_format.channels, self.control_channels)
        if self.concat_channels not in allowed:
            raise LatentShapeError(
                f"{spec.describe()}: {self.in_channels} input channels do not match the {self.latent_format.name} "
                f"latent ({self.latent_format.channels}) with or without an image-conditioning latent"
            )

    @property
    def control_channels(self) -> int:
        """The concatenated channels of Fun control models: a control video latent and a start image latent."""
        return 2 * self.latent_format.channels

    @property
    def fun_control(self) -> bool:
        """Whether the network takes ``[control video latent, start image latent]`` (Wan Fun control models)."""
        return self.concat_channels == self.control_channels

    @property
    def latent_concat(self) -> bool:
        """Whether the concatenated input is whole latents without a mask: Fun control (two) or Fun camera (the
        start image's)."""
        return self.concat_channels in (self.latent_format.channels, self.control_channels)

    @property
    def camera(self) -> bool:
        """Whether the network takes a camera embedding (Wan Fun camera-control models)."""
        return self.spec.variant == "camera"

    @property
    def per_token_timesteps(self) -> bool:
        """Whether a noise mask sets each token's timestep (the 2.2 TI2V 5B model, trained that way)."""
        return self.spec.variant == "ti2v"

    @property
    def vace(self) -> bool:
        """Whether the network takes VACE control (``control_hidden_states``)."""
        return self.spec.variant == "vace"

    @property
    def needs_image(self) -> bool:
        """Whether the network takes an image-conditioning latent (image-to-video models)."""
        return self.concat_channels > 0

    def describe(self) -> str:
        return self.spec.describe()

    def default_sampling(self) -> FlowSampling:
        return FlowSampling(shift=DEFAULT_SHIFT)

    def check_conditioning(self, entry: ConditioningEntry, samples: torch.Tensor) -> None:
        embeds, extras = entry
        text_dim = self.spec.config.get("text_dim")
        check_text_embeddings(
            embeds, samples, text_dim, self.describe(), "was it encoded by another family's text encoder?"
        )
        image = extras.get("concat_latent_image")
        if image is not None and self.latent_concat:
            if image.dim() != 5 or image.shape[1] != self.concat_channels or image.shape[2:] != samples.shape[2:]:
                source = "WanCameraImageToVideo" if self.camera else "WanFunControlToVideo"
                kind = "Fun camera" if self.camera else "Fun control"
                raise LatentShapeError(
                    f"{self.describe()} is a {kind} model: its concat_latent_image must be "
                    f"[batch, {self.concat_channels}, {_size(samples)}] (from {source}), got {tuple(image.shape)}"
                )
        elif image is not None:
            self.latent_format.check(image, "concat_latent_image")
            if image.shape[2:] != samples.shape[2:]:
                raise LatentShapeError(
                    f"the start image latent is {_size(image)} but the latent being sampled is {_size(samples)}: "
                    "give WanImageToVideo the same width, height and length as the latent"
                )
        vision = extras.get("clip_vision_output")
        if self.image_dim is not None and vision is None:
            raise ValueError(
                f"{self.describe()} needs the start image's CLIP vision features: connect CLIPVisionEncode to "
                "clip_vision_output of WanImageToVideo"
            )
        image_tokens = self.spec.config.get("pos_embed_seq_len")
        if vision is not None and image_tokens and vision.penultimate_hidden_states.shape[-2] != image_tokens:
            raise ValueError(
                f"{self.describe()} takes the CLIP vision features of two images ({image_tokens} tokens), got "
                f"{vision.penultimate_hidden_states.shape[-2]}: connect CLIPVisionEncode of both the start and the "
                "end image to WanFirstLastFrameToVideo"
            )
        if not self.latent_concat:
            self._concat_mask(extras, samples)  # checks the mask's shape
        camera = extras.get("camera_conditions")
        if self.camera and camera is not None:
            expected = (
                CAMERA_CHANNELS,
                samples.shape[2],
                *(side * self.latent_format.spatial_ratio for side in samples.shape[3:]),
            )
            if camera.dim() != 5 or tuple(camera.shape[1:]) != expected:
                raise LatentShapeError(
                    f"camera_conditions is {tuple(camera.shape)}; for the latent being sampled it must be "
                    f"[batch, {', '.join(map(str, expected))}]: give WanCameraEmbedding the latent's size and length"
                )
        if self.vace:
            self._check_vace(extras, samples)

    def _check_vace(self, extras: Mapping[str, Any], samples: torch.Tensor) -> None:
        control = extras.get(VACE_CONTROL)
        if control is None:
            raise ValueError(f"{self.describe()} is a VACE model: condition it with WanVaceToVideo")
        channels = int(self.spec.config["vace_in_channels"])
        if control.dim() != 5 or control.shape[1] != channels or control.shape[2:] != samples.shape[2:]:
            raise LatentShapeError(
                f"the VACE control is {tuple(control.shape)}; for the latent being sampled ({_size(samples)}) it "
                f"must be [batch, {channels}, frames, height, width] of the same size: give WanVaceToVideo the "
                "latent's width, height and length"
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
        if denoise_mask is not None and self.per_token_timesteps:
            timestep = self._token_timesteps(timestep, denoise_mask)
        hidden = x
        if self.latent_concat:
            hidden = torch.cat([x, self._latent_condition(extras, x)], dim=1)
        elif self.needs_image:
            hidden = torch.cat([x, self._image_condition(extras, x)], dim=1)
        image_embeds = None
        if self.image_dim is not None:
            image_embeds = batched(extras["clip_vision_output"].penultimate_hidden_states, x).to(x.device, dtype)
            if self.spec.config.get("pos_embed_seq_len"):  # two images in a row; diffusers takes them stacked
                image_embeds = image_embeds.reshape(-1, image_embeds.shape[1] // 2, image_embeds.shape[2])
        per_sample = {
            "hidden_states": hidden.to(dtype),
            "timestep": timestep,
            "encoder_hidden_states": batched(embeds, x).to(x.device, dtype),
            "encoder_hidden_states_image": image_embeds,
        }
        shared: dict[str, Any] = {}
        if self.camera:
            camera = extras.get("camera_conditions")
            per_sample["camera_embedding"] = None if camera is None else batched(camera, x).to(x.device, dtype)
        if self.vace:
            per_sample["control_hidden_states"] = batched(extras[VACE_CONTROL], x).to(x.device, dtype)
            hints = len(self.spec.config["vace_layers"])
            strength = float(extras.get("vace_strength", 1.0))
            shared["control_hidden_states_scale"] = torch.full((hints,), strength, device=x.device, dtype=dtype)
        return NetworkCall(per_sample, shared)

    def known_state(
        self, sampling: ModelSampling, sigma: torch.Tensor, noise: torch.Tensor, clean: torch.Tensor
    ) -> torch.Tensor:
        if self.per_token_timesteps:
            return clean
        return super().known_state(sampling, sigma, noise, clean)

    def _token_timesteps(self, timestep: torch.Tensor, denoise_mask: torch.Tensor) -> torch.Tensor:
        """``[B, tokens]`` timesteps: each patch's mask value (its first latent pixel) times the step's timestep."""
        _, patch_h, patch_w = self.patch_size
        per_token = denoise_mask[:, 0, :, ::patch_h, ::patch_w].flatten(1)
        return per_token * timestep.reshape(-1, 1).to(per_token)

    def work_estimate(self, samples: torch.Tensor, streams: int) -> WorkEstimate:
        batch, _, frames, height, width = samples.shape
        fmt = self.latent_format
        activation = estimate_activation_bytes(
            "transformer",
            width * fmt.spatial_ratio,
            height * fmt.spatial_ratio,
            (frames - 1) * fmt.temporal_ratio + 1,
            batch=batch * streams,
            hidden_size=self.hidden_size,
            patch_size=self.patch_size,  # type: ignore[arg-type]
            spatial_ratio=fmt.spatial_ratio,
            temporal_ratio=fmt.temporal_ratio,
        )
        return WorkEstimate(activation)

    def _image_condition(self, extras: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
        """``[keep mask (4), normalised image latent]`` for ``x``; zeros (nothing kept) without an image."""
        image = extras.get("concat_latent_image")
        batch, _, frames, height, width = x.shape
        if image is None:
            latent = torch.zeros(batch, self.latent_format.channels, frames, height, width, device=x.device)
        else:
            latent = self.latent_format.process_in(image.to(x.device, torch.float32))
        keep = 1.0 - self._concat_mask(extras, x).to(x.device, torch.float32)
        return torch.cat([batched(keep, x), batched(latent, x)], dim=1)

    def _latent_condition(self, extras: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
        """Fun control (control video and start image latents) or Fun camera (the start image latent), each latent
        normalised; zeros (the latent space's zero) for what is not given."""
        image = extras.get("concat_latent_image")
        batch, _, frames, height, width = x.shape
        if image is None:
            return torch.zeros(batch, self.concat_channels, frames, height, width, device=x.device)
        channels = self.latent_format.channels
        raw = image.to(x.device, torch.float32)
        starts = range(0, self.concat_channels, channels)
        parts = [self.latent_format.process_in(raw[:, start : start + channels]) for start in starts]
        return batched(torch.cat(parts, dim=1), x)

    def _concat_mask(self, extras: Mapping[str, Any], x: torch.Tensor) -> torch.Tensor:
        """The generate mask as ``[1|B, 4, T, h, w]`` (1 = generate), from ComfyUI's latent- or frame-rate mask."""
        mask = extras.get("concat_mask")
        _, _, frames, height, width = x.shape
        if mask is None:
            generate = 0.0 if extras.get("concat_latent_image") is not None else 1.0
            return torch.full((1, MASK_CHANNELS, frames, height, width), generate)
        if mask.dim() == 4:
            mask = mask.unsqueeze(1)
        if mask.dim() != 5 or mask.shape[1] != 1 or mask.shape[2] not in (frames, frames * MASK_CHANNELS):
            raise LatentShapeError(
                f"concat_mask has shape {tuple(mask.shape)}; for {frames} latent frames it must be [batch, 1, "
                f"{frames} or {frames * MASK_CHANNELS}, height, width]"
            )
        if mask.shape[2] == frames:
            mask = mask.expand(-1, MASK_CHANNELS, -1, -1, -1)
        else:  # frame-rate mask: four consecutive frames per latent frame become its four channels
            mask = mask.reshape(mask.shape[0], frames, MASK_CHANNELS, *mask.shape[3:]).transpose(1, 2)
        if mask.shape[3:] != (height, width):
            mask = F.interpolate(mask.float(), size=(frames, height, width), mode="nearest")
        return mask


def _size(latent: torch.Tensor) -> str:
    return "x".join(str(n) for n in latent.shape[2:]) + " (frames x height x width)"
