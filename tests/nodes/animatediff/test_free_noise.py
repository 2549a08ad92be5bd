"""FreeNoise against ``AnimateDiffPipeline.enable_free_noise(noise_type="shuffle_context")``: the shuffled noise
against diffusers' ``_prepare_latents_free_noise``, and the chain CheckpointLoaderSimple + AnimateDiffLoader +
AnimateDiffApply (context windows) + CLIPTextEncode x2 + EmptyAnimateDiffLatent + FreeNoiseShuffledNoise + CFGGuider +
KSamplerSelect (euler) + BasicScheduler (simple) + SamplerCustomAdvanced + VAEDecode against the pipeline's frames
(Euler with trailing timesteps, as tests/nodes/animatediff/test_fidelity.py)."""

from __future__ import annotations

import pytest
import torch
from diffusers.pipelines.free_noise_utils import AnimateDiffFreeNoiseMixin

from models.families.animatediff.free_noise import ShuffledContextNoise
from nodes.animatediff import AnimateDiffApply, AnimateDiffLoader, EmptyAnimateDiffLatent, FreeNoiseShuffledNoise
from nodes.loaders import CheckpointLoaderSimple
from nodes.sampling import SamplerCustomAdvanced
from nodes.sampling_parts import BasicScheduler, CFGGuider, KSamplerSelect
from tests.nodes import fidelity
from tests.nodes.animatediff.test_fidelity import CFG, CHECKPOINT, NEGATIVE, PROMPT, SEED, SIZE, STEPS, _pipeline
from tests.nodes.node_runner import NodeRunner

MOTION_MODULE = "mm_sd_v15_v2.ckpt"
FRAMES, CONTEXT_LENGTH, CONTEXT_STRIDE = 11, 4, 2


def _diffusers_noise(shape: tuple[int, ...], seed: int, length: int, stride: int) -> torch.Tensor:
    mixin = AnimateDiffFreeNoiseMixin()
    mixin._free_noise_context_length = length
    mixin._free_noise_context_stride = stride
    mixin._free_noise_noise_type = "shuffle_context"
    mixin.vae_scale_factor = 1
    batch, channels, frames, height, width = shape
    generator = torch.Generator().manual_seed(seed)
    return mixin._prepare_latents_free_noise(
        batch, channels, frames, height, width, torch.float32, torch.device("cpu"), generator
    )


@pytest.mark.parametrize(("frames", "length", "stride"), [(11, 4, 2), (16, 5, 3), (9, 4, 4), (3, 4, 1), (7, 1, 1)])
def test_noise_matches_diffusers(frames: int, length: int, stride: int) -> None:
    like = torch.zeros(2, 4, frames, 3, 5)
    ours, generator = ShuffledContextNoise(7, context_length=length, context_stride=stride).draw(like)
    reference = _diffusers_noise(tuple(like.shape), 7, length, stride)
    assert torch.equal(ours, reference)
    plain = torch.randn(like.shape, generator=torch.Generator().manual_seed(7))
    assert torch.equal(ours[:, :, :length], plain[:, :, :length])
    if frames > length:  # later frames repeat earlier ones; the generator has moved past the permutations
        assert any(torch.equal(ours[:, :, length], plain[:, :, index]) for index in range(stride))
        assert not torch.equal(generator.get_state(), torch.Generator().manual_seed(7).get_state())


def test_noise_node_refuses_a_stride_above_the_length() -> None:
    with pytest.raises(ValueError, match=r"FreeNoiseShuffledNoise: context stride 5 must lie in 1..context length 4"):
        FreeNoiseShuffledNoise().noise(0, context_length=4, context_stride=5)


@pytest.mark.parametrize("weighting", ["pyramid", "delayed_reverse_sawtooth"])
def test_free_noise_matches_animatediff_pipeline(runner: NodeRunner, weighting: str) -> None:
    model, clip, vae = runner.call(CheckpointLoaderSimple, ckpt_name=CHECKPOINT)
    (motion,) = runner.call(AnimateDiffLoader, model_name=MOTION_MODULE)
    windows = {"context_length": CONTEXT_LENGTH, "context_stride": CONTEXT_STRIDE}
    (model,) = runner.call(AnimateDiffApply, model=model, motion_model=motion, context_weighting=weighting, **windows)
    positive, negative = fidelity.encode_prompts(runner, clip, PROMPT, NEGATIVE)
    (latent,) = runner.call(EmptyAnimateDiffLatent, width=SIZE, height=SIZE, length=FRAMES, batch_size=1)
    (noise,) = runner.call(FreeNoiseShuffledNoise, noise_seed=SEED, **windows)
    (guider,) = runner.call(CFGGuider, model=model, positive=positive, negative=negative, cfg=CFG)
    (sampler,) = runner.call(KSamplerSelect, sampler_name="euler")
    (sigmas,) = runner.call(BasicScheduler, model=model, scheduler="simple", steps=STEPS, denoise=1.0)
    (output, _) = runner.result(
        SamplerCustomAdvanced, noise=noise, guider=guider, sampler=sampler, sigmas=sigmas, latent_image=latent
    )
    ours = fidelity.decoded(runner, output, vae)

    with _pipeline(model, clip, vae, motion_adapter=motion.build(torch.float32)) as pipeline:
        pipeline.enable_free_noise(CONTEXT_LENGTH, CONTEXT_STRIDE, weighting, noise_type="shuffle_context")
        inputs = fidelity.pipeline_inputs(
            PROMPT, NEGATIVE, height=SIZE, width=SIZE, frames=FRAMES, steps=STEPS, guidance=CFG, seed=SEED
        )
        reference = fidelity.pipeline_frames(pipeline(**inputs).frames)
    difference = fidelity.max_difference(ours, reference)
    print(f"FreeNoise {weighting}, windows {CONTEXT_LENGTH}/{CONTEXT_STRIDE}: max difference {difference:.3g}")
    assert difference < 1e-4, difference
    assert (ours[1:] - ours[:-1]).abs().max() > 1e-3
