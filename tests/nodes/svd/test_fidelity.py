"""Fidelity to diffusers at the node level: ImageOnlyCheckpointLoader + VideoLinearCFGGuidance +
SVD_img2vid_Conditioning + SamplerCustom (euler over the Karras sigmas of BasicScheduler) + VAEDecode reproduce
``StableVideoDiffusionPipeline``'s frames for the same tiny checkpoint, image, noise and sigmas, in float32.

The image is 224x224, the CLIP tower's own size: the pipeline then skips its antialiased resize (it skips it for
tensor images anyway) and ``CLIPVisionEncode``'s center crop is a no-op, so both encode the same pixels. The
pipeline draws its noise as ``[B, F, C, H, W]`` and scales it by ``init_noise_sigma`` (``sqrt(sigma_max^2 + 1)`` with
the release's "leading" spacing), so it is given our noise, transposed and divided accordingly (ComfyUI starts at
``sigma_max * noise``).
"""

from __future__ import annotations

import torch
from diffusers import EulerDiscreteScheduler, StableVideoDiffusionPipeline
from transformers import CLIPImageProcessor

from models.noise import Noise
from nodes.loaders import ImageOnlyCheckpointLoader
from nodes.sampling_parts import BasicScheduler
from nodes.svd import SVD_img2vid_Conditioning, VideoLinearCFGGuidance
from tests.nodes import fidelity
from tests.nodes.node_runner import NodeRunner

SIZE, FRAMES, STEPS, SEED = 224, 3, 3, 7
MIN_CFG, CFG = 1.0, 2.5
FPS, MOTION = 7, 100
SCHEDULER_CONFIG = {  # stabilityai/stable-video-diffusion-img2vid-xt scheduler_config.json
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


def test_image_to_video_matches_the_svd_pipeline(runner: NodeRunner) -> None:
    image = torch.rand(1, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(3))
    model, clip_vision, vae = runner.call(ImageOnlyCheckpointLoader, ckpt_name="svd_xt.safetensors")
    (model,) = runner.call(VideoLinearCFGGuidance, model=model, min_cfg=MIN_CFG)
    positive, negative, latent = runner.call(
        SVD_img2vid_Conditioning,
        clip_vision=clip_vision,
        init_image=image,
        vae=vae,
        width=SIZE,
        height=SIZE,
        video_frames=FRAMES,
        motion_bucket_id=MOTION,
        fps=FPS,
        augmentation_level=0.0,
    )
    (sigmas,) = runner.call(BasicScheduler, model=model, scheduler="karras", steps=STEPS, denoise=1.0)
    output = fidelity.sample_custom(runner, model, positive, negative, latent, sigmas, seed=SEED, cfg=CFG)
    ours = fidelity.decoded(runner, output, vae)
    assert ours.shape == (FRAMES, SIZE, SIZE, 3)

    scheduler = EulerDiscreteScheduler(**SCHEDULER_CONFIG)
    scheduler.set_timesteps(STEPS)
    torch.testing.assert_close(sigmas.float(), scheduler.sigmas, rtol=1e-5, atol=0)  # the release's Karras schedule
    noise, _ = Noise(SEED).draw(latent["samples"])
    init_noise_sigma = (float(sigmas[0]) ** 2 + 1.0) ** 0.5
    with model.handle.use() as unet, clip_vision.handle.use() as encoder, vae.handle.use() as autoencoder:
        pipeline = StableVideoDiffusionPipeline(
            vae=autoencoder,
            image_encoder=encoder,
            unet=unet,
            scheduler=scheduler,
            feature_extractor=CLIPImageProcessor(),
        )
        reference = pipeline(
            image.permute(0, 3, 1, 2),
            height=SIZE,
            width=SIZE,
            num_frames=FRAMES,
            sigmas=sigmas.tolist(),
            min_guidance_scale=MIN_CFG,
            max_guidance_scale=CFG,
            fps=FPS,
            motion_bucket_id=MOTION,
            noise_aug_strength=0.0,
            decode_chunk_size=FRAMES,
            latents=noise.transpose(1, 2) * float(sigmas[0]) / init_noise_sigma,
            output_type="pt",
        ).frames
    difference = fidelity.max_difference(ours, fidelity.pipeline_frames(reference))
    print(f"svd img2vid max difference {difference:.3g}")
    assert difference < 1e-4, difference
    assert ours.std() > 0.01  # not a constant picture
