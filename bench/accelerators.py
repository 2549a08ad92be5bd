"""Accelerator quality-and-speed report: what each accelerator variant saves in time and costs in fidelity, on the same
Wan 2.1 T2V model, prompts and seed.

Every variant turns the loaded MODEL into its own MODEL (``variants_for``: a name and a function; baseline is the MODEL
as loaded). Each prompt of a fixed set is encoded once (untimed); then for each variant and prompt ``KSampler``
(euler, ``simple`` schedule, cfg 5, positive and negative batched) samples the same seeded latent and ``VAEDecode``
decodes it, through the node functions inside a node context, as the executor runs them. Figures per variant:

- wall time: the sampler's seconds summed over the prompts (``sample_s``) and with the decodes (``total_s``), median
  over ``--repeats`` rounds; every variant runs once untimed first, and the variants' order reverses every round so
  drift (heat, other load) falls on all of them alike. Speed-up = baseline seconds / variant seconds, both from this
  run (``speedup`` on sampling, the part the accelerators change; ``speedup_total`` with the decodes).
- transformer block evaluations, summed over the prompts: forward hooks on each Wan block's ``ffn``, which runs only
  when the block computes (a cached step runs the first block only).
- peak memory over the timed rounds: the process's resident-set high-water mark (``VmHWM``, ``bench.offload.PeakRss``)
  and, on CUDA, ``torch.cuda.max_memory_allocated``.
- fidelity of the decoded frames to the baseline's (same prompt and seed), per frame over every prompt's frames, mean
  and worst: PSNR in dB (frames in 0..1; identical frames give ``PSNR_CAP_DB``, so the JSON stays finite) and SSIM
  (``ssim_per_frame``: Wang et al. 2004 on BT.601 luma, an 11-tap gaussian window of sigma 1.5, no padding,
  K1 0.01, K2 0.03, data range 1). The baseline is compared with itself, so it reads the cap and SSIM 1.

Sizes: ``tiny`` = the ``models/tiny`` Wan 2.1 T2V 1.3B stand-in (2 layers, dim 256), its 2.1 VAE and UMT5, at 64x64,
9 frames, 8 steps; ``real`` = a real-size random-weight Wan 2.1 T2V 1.3B (30 layers, dim 1536) and 2.1 VAE in
bfloat16 files (``bench.sampling_models``, loaded by ``UNETLoader`` as released weights are) at 832x480, 33 frames,
20 steps: for a GPU. Random weights time exactly what trained ones do, but a cache's skips depend on how the first
block's output changes between steps, which trained weights decide: the fidelity figures are the real model's only
with real weights.

    python bench/accelerators.py                                    # tiny, CPU
    python bench/accelerators.py --threads 1 --repeats 5
    python bench/accelerators.py --size real --device cuda --prompts 2 --repeats 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from safetensors.torch import save_file

from bench.offload import PeakRss
from bench.plot import draw_line_chart, side_by_side
from bench.report import format_table, load_average, torch_machine_info
from bench.sampling_models import TINY_STEMS, write_model_set
from bench.timing import Stopwatch
from graph.context import InterruptFlag, NodeContext, node_context
from models.devices import DeviceProbe
from models.diffusion_model import DiffusionModel
from models.families.wan.checkpoint import ORIGINAL_PREFIX, wan_transformer_to_original
from models.families.wan.vae_checkpoint import wan_vae_to_original
from models.folders import ModelFolders
from models.memory import MODELS_SERVICE, MemoryConfig, ModelManager
from models.pixels import LUMA_WEIGHTS
from models.tiny.text import write_tiny_umt5_files
from models.tiny.wan import DIFFUSION_MODELS_FOLDER, VAE_DTYPE, VAE_FOLDER, tiny_wan_transformer, tiny_wan_vae
from nodes.accelerate import ApplyFirstBlockCache, ApplySparseAttention
from nodes.conditioning import CLIPTextEncode
from nodes.latent import EmptyHunyuanLatentVideo
from nodes.loaders import CLIPLoader, UNETLoader, VAELoader
from nodes.model_files import MODEL_FOLDERS_SERVICE
from nodes.quantize import QuantizeModel
from nodes.sampling import KSampler
from nodes.vae import VAEDecode

RESULTS = Path(__file__).parent / "results"
PROMPTS = (
    "a red car driving along a coastal road at sunset, aerial shot",
    "a cat jumping onto a wooden kitchen table, slow motion",
    "waves breaking on black rocks under a stormy sky",
)
NEGATIVE_PROMPT = "blurry, low quality, static"
SEED = 42
CFG = 5.0
REFERENCE = "baseline"
PSNR_CAP_DB = 100.0
"""The PSNR given to identical frames (mean squared error at or below 1e-10)."""
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
MB = 1 << 20


# ----- variants: a name and what it makes of the MODEL ------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One accelerator setting: ``make`` turns the loaded MODEL into the MODEL this variant samples with (it runs
    inside a node context, so it may call nodes)."""

    name: str
    description: str
    make: Callable[[DiffusionModel], DiffusionModel]


def _unchanged(model: DiffusionModel) -> DiffusionModel:
    return model


def first_block_cache(threshold: float, start_percent: float = 0.1) -> Variant:
    """``ApplyFirstBlockCache`` at ``threshold``, caching from ``start_percent`` to the end."""

    def make(model: DiffusionModel) -> DiffusionModel:
        (cached,) = ApplyFirstBlockCache().apply(model, threshold, start_percent, 1.0)
        return cached

    return Variant(f"fbc_{threshold:g}", f"First Block Cache, threshold {threshold:g}, from {start_percent:g}", make)


def sliding_tile(tile: tuple[int, int, int], window: tuple[int, int, int], start_percent: float = 0.2) -> Variant:
    """``ApplySparseAttention`` with Sliding Tile Attention windows (``window`` tiles of ``tile`` tokens), dense
    before ``start_percent``."""

    def make(model: DiffusionModel) -> DiffusionModel:
        (sparse,) = ApplySparseAttention().apply(model, "sliding_tile", *tile, *window, 0.05, start_percent, "auto")
        return sparse

    shape = f"tile {'x'.join(map(str, tile))}, window {'x'.join(map(str, window))}"
    return Variant(f"sta_{'x'.join(map(str, window))}", f"Sliding Tile Attention, {shape}", make)


def quantized(method: str) -> Variant:
    """``QuantizeModel`` with ``method`` on every Linear layer."""

    def make(model: DiffusionModel) -> DiffusionModel:
        (quantized_model,) = QuantizeModel().quantize(model, method, "")["result"]
        return quantized_model

    return Variant(method, f"QuantizeModel {method}", make)


STA_SETTINGS = {"tiny": ((1, 2, 2), (3, 1, 1)), "real": ((3, 6, 8), (3, 3, 3))}
"""Sliding Tile Attention's (tile, window) per model size: on the tiny 3 x 4 x 4 token grid, every frame but one
spatial tile (a quarter of the keys); at 480p, 33 frames (9 x 30 x 52 tokens), 3 x 3 x 3 tiles of 3 x 6 x 8 (about
a fifth)."""


def variants_for(size: str) -> tuple[Variant, ...]:
    """Every variant, reference first; each accelerator or quantizer setting is one entry."""
    return (
        Variant(REFERENCE, "unaccelerated", _unchanged),
        first_block_cache(0.05),
        first_block_cache(0.1),
        first_block_cache(0.2),
        sliding_tile(*STA_SETTINGS[size]),
        quantized("int8_weight_only"),
        quantized("int8_dynamic"),
    )


# ----- sizes and models --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizePreset:
    """A model size's default picture, length and steps."""

    width: int
    height: int
    frames: int
    steps: int


SIZES: Mapping[str, SizePreset] = MappingProxyType(
    {"tiny": SizePreset(64, 64, 9, 8), "real": SizePreset(832, 480, 33, 20)}
)


@dataclass(frozen=True)
class ModelFiles:
    """The Wan diffusion model, text encoder and VAE file names under ``models_dir``, and what they are."""

    models_dir: Path
    unet: str
    text_encoder: str
    vae: str
    what: str


def write_models(size: str, models_dir: Path, seed: int) -> ModelFiles:
    """Write the ``size`` model files under ``models_dir``."""
    if size == "tiny":
        return _write_tiny(models_dir, seed)
    written = write_model_set("480p", models_dir, seed)
    return ModelFiles(models_dir, written.unet, written.text_encoder, written.vae, written.info["what"])


def _write_tiny(models_dir: Path, seed: int) -> ModelFiles:
    """Only the files this bench loads (the tiny T2V 1.3B stand-in in float16, its 2.1 VAE, the tiny UMT5), holding
    the values ``models.tiny`` gives them."""
    unet, vae = (f"{TINY_STEMS[role]}.safetensors" for role in ("unet", "vae"))
    transformer = wan_transformer_to_original(tiny_wan_transformer(TINY_STEMS["unet"], seed).state_dict())
    _save(
        {ORIGINAL_PREFIX + key: tensor.half() for key, tensor in transformer.items()},
        models_dir / DIFFUSION_MODELS_FOLDER / unet,
    )
    decoder = wan_vae_to_original(tiny_wan_vae(TINY_STEMS["vae"], seed).state_dict())
    _save({key: tensor.to(VAE_DTYPE) for key, tensor in decoder.items()}, models_dir / VAE_FOLDER / vae)
    write_tiny_umt5_files(models_dir, seed)
    text_encoder = f"{TINY_STEMS['text_encoder']}.safetensors"
    return ModelFiles(models_dir, unet, text_encoder, vae, "tiny random (models/tiny)")


def _save(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: tensor.contiguous() for key, tensor in tensors.items()}, str(path))


# ----- running nodes ----------------------------------------------------------------------------------------------


class Nodes:
    """Calls node functions inside a node context holding the model manager and the model folders."""

    def __init__(self, manager: ModelManager, models_dir: Path) -> None:
        self.services = {MODELS_SERVICE: manager, MODEL_FOLDERS_SERVICE: ModelFolders(models_dir)}
        self.interrupt = InterruptFlag()

    @contextmanager
    def context(self, class_type: str = "bench") -> Iterator[None]:
        with node_context(NodeContext("1", "1", class_type, "bench", self.interrupt, self.services)):
            yield

    def call(self, node_class: type, **inputs: Any) -> tuple[Any, ...]:
        """The node's outputs, whether it returned a tuple or ``{"ui": ..., "result": ...}``."""
        with self.context(node_class.__name__):
            returned = getattr(node_class(), node_class.FUNCTION)(**inputs)
        return tuple(returned["result"]) if isinstance(returned, dict) else returned


@dataclass
class Run:
    """One variant on one prompt: its frames, seconds, block evaluations and peak memory."""

    frames: torch.Tensor = field(repr=False)
    sample_s: float
    decode_s: float
    block_evaluations: int
    peak_rss_bytes: int
    peak_cuda_bytes: int | None


@contextmanager
def counted_blocks(model: DiffusionModel) -> Iterator[list[int]]:
    """How many times the network's transformer blocks computed while the block runs (hooks on each ``ffn``)."""
    with model.handle.use() as network:
        counts = [0]

        def count(*_args: Any) -> None:
            counts[0] += 1

        handles = [block.ffn.register_forward_hook(count) for block in network.blocks]
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()


class Bench:
    """The loaded model, VAE, encoded prompts and empty latent; ``run`` samples and decodes one variant on one
    prompt."""

    def __init__(
        self, nodes: Nodes, device: torch.device, files: ModelFiles, preset: SizePreset, prompts: Sequence[str]
    ) -> None:
        self.nodes = nodes
        self.device = device
        self.steps = preset.steps
        (self.model,) = nodes.call(UNETLoader, unet_name=files.unet, weight_dtype="default")
        (clip,) = nodes.call(CLIPLoader, clip_name=files.text_encoder, type="wan")
        (self.vae,) = nodes.call(VAELoader, vae_name=files.vae)
        (negative,) = nodes.call(CLIPTextEncode, clip=clip, text=NEGATIVE_PROMPT)
        self.conditions = [(nodes.call(CLIPTextEncode, clip=clip, text=text)[0], negative) for text in prompts]
        (self.latent,) = nodes.call(
            EmptyHunyuanLatentVideo, width=preset.width, height=preset.height, length=preset.frames, batch_size=1
        )

    def variant_model(self, variant: Variant) -> DiffusionModel:
        with self.nodes.context(variant.name):
            return variant.make(self.model)

    def run(self, model: DiffusionModel, prompt: int) -> Run:
        positive, negative = self.conditions[prompt]
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        with PeakRss() as rss, counted_blocks(model) as blocks:
            with Stopwatch(self.device) as sampling:
                (latent,) = self.nodes.call(
                    KSampler,
                    model=model,
                    seed=SEED,
                    steps=self.steps,
                    cfg=CFG,
                    sampler_name="euler",
                    scheduler="simple",
                    positive=positive,
                    negative=negative,
                    latent_image=self.latent,
                    denoise=1.0,
                )
            with Stopwatch(self.device) as decoding:
                (frames,) = self.nodes.call(VAEDecode, samples=latent, vae=self.vae)
        peak_cuda = torch.cuda.max_memory_allocated(self.device) if cuda else None
        return Run(frames.float().cpu(), sampling.wall_s, decoding.wall_s, blocks[0], rss.peak, peak_cuda)


# ----- fidelity ---------------------------------------------------------------------------------------------------


def psnr_per_frame(frames: torch.Tensor, reference: torch.Tensor) -> list[float]:
    """PSNR in dB of each ``[F, H, W, C]`` frame (values 0..1) against the reference's; ``PSNR_CAP_DB`` where they
    are identical."""
    _check_same_shape(frames, reference)
    mse = (frames.double() - reference.double()).square().mean(dim=(1, 2, 3))
    floor = 10.0 ** (-PSNR_CAP_DB / 10)
    return [PSNR_CAP_DB if value <= floor else -10.0 * math.log10(value) for value in mse.tolist()]


def ssim_per_frame(frames: torch.Tensor, reference: torch.Tensor) -> list[float]:
    """Mean SSIM of each ``[F, H, W, 3]`` frame (values 0..1) against the reference's, on BT.601 luma with an
    ``SSIM_WINDOW``-tap gaussian window (sigma ``SSIM_SIGMA``) over the positions where it fits whole."""
    _check_same_shape(frames, reference)
    if min(frames.shape[1:3]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(frames.shape[1:3])}")
    x, y = _luma(frames), _luma(reference)
    blur = _gaussian_blur
    mean_x, mean_y = blur(x), blur(y)
    var_x = blur(x * x) - mean_x.square()
    var_y = blur(y * y) - mean_y.square()
    covariance = blur(x * y) - mean_x * mean_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # data range 1
    similarity = ((2 * mean_x * mean_y + c1) * (2 * covariance + c2)) / (
        (mean_x.square() + mean_y.square() + c1) * (var_x + var_y + c2)
    )
    return similarity.mean(dim=(1, 2, 3)).tolist()


def _check_same_shape(frames: torch.Tensor, reference: torch.Tensor) -> None:
    if frames.shape != reference.shape:
        raise ValueError(f"frames {tuple(frames.shape)} and reference {tuple(reference.shape)} differ in shape")


def _luma(frames: torch.Tensor) -> torch.Tensor:
    """``[F, H, W, 3]`` RGB as ``[F, 1, H, W]`` luma, float64."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=torch.float64)
    return (frames.double() * weights).sum(dim=-1).unsqueeze(1)


def _gaussian_blur(images: torch.Tensor) -> torch.Tensor:
    """``[N, 1, H, W]`` filtered by the separable normalised gaussian window, valid positions only."""
    offsets = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    taps = torch.exp(-offsets.square() / (2 * SSIM_SIGMA**2))
    taps = taps / taps.sum()
    rows = torch.nn.functional.conv2d(images, taps.view(1, 1, 1, -1))
    return torch.nn.functional.conv2d(rows, taps.view(1, 1, -1, 1))


def fidelity(runs: Sequence[Run], references: Sequence[Run]) -> dict[str, Any]:
    """PSNR and SSIM of every frame of every prompt against the reference's: mean, worst, and per prompt."""
    psnr = [psnr_per_frame(run.frames, ref.frames) for run, ref in zip(runs, references, strict=True)]
    ssim = [ssim_per_frame(run.frames, ref.frames) for run, ref in zip(runs, references, strict=True)]
    every_psnr, every_ssim = [v for p in psnr for v in p], [v for p in ssim for v in p]
    return {
        "psnr_db_mean": statistics.fmean(every_psnr),
        "psnr_db_worst": min(every_psnr),
        "ssim_mean": statistics.fmean(every_ssim),
        "ssim_worst": min(every_ssim),
        "psnr_db_per_prompt": psnr,
        "ssim_per_prompt": ssim,
    }


# ----- measuring --------------------------------------------------------------------------------------------------


@dataclass
class Measured:
    """Per variant: the untimed first round's runs (fidelity, block counts) and each timed round's runs."""

    first: dict[str, list[Run]] = field(default_factory=dict)
    rounds: dict[str, list[list[Run]]] = field(default_factory=dict)
    orders: list[list[str]] = field(default_factory=list)


def measure(bench: Bench, variants: Sequence[Variant], repeats: int) -> Measured:
    """Each variant once untimed (reference first), then ``repeats`` rounds, the order reversing every round."""
    models = {variant.name: bench.variant_model(variant) for variant in variants}
    prompts = range(len(bench.conditions))
    measured = Measured()
    for name, model in models.items():
        measured.first[name] = [bench.run(model, prompt) for prompt in prompts]
        _progress(f"first round: {name}")
    for repeat in range(repeats):
        order = list(models) if repeat % 2 == 0 else list(reversed(models))
        measured.orders.append(order)
        for name in order:
            runs = [bench.run(models[name], prompt) for prompt in prompts]
            measured.rounds.setdefault(name, []).append(runs)
            _progress(f"round {repeat + 1}/{repeats}: {name} {sum(run.sample_s for run in runs):.3f} s sampling")
    return measured


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def variant_figures(measured: Measured, variant: Variant) -> dict[str, Any]:
    """One variant's medians, block evaluations, peak memory and fidelity (without the speed-ups)."""
    rounds = measured.rounds[variant.name]
    sample_s = [sum(run.sample_s for run in runs) for runs in rounds]
    total_s = [sum(run.sample_s + run.decode_s for run in runs) for runs in rounds]
    every = [run for runs in rounds for run in runs]
    cuda = [run.peak_cuda_bytes for run in every if run.peak_cuda_bytes is not None]
    first = measured.first[variant.name]
    return {
        "description": variant.description,
        "sample_s": statistics.median(sample_s),
        "total_s": statistics.median(total_s),
        "sample_s_rounds": sample_s,
        "total_s_rounds": total_s,
        "block_evaluations": sum(run.block_evaluations for run in first),
        "block_evaluations_per_prompt": [run.block_evaluations for run in first],
        "peak_rss_bytes": max(run.peak_rss_bytes for run in every),
        "peak_cuda_allocated_bytes": max(cuda) if cuda else None,
        **fidelity(first, measured.first[REFERENCE]),
    }


def figures(measured: Measured, variants: Sequence[Variant]) -> dict[str, dict[str, Any]]:
    """Every variant's figures with its speed-ups and block-evaluation ratio against the reference's."""
    table = {variant.name: variant_figures(measured, variant) for variant in variants}
    reference = table[REFERENCE]
    for entry in table.values():
        entry["speedup"] = reference["sample_s"] / entry["sample_s"]
        entry["speedup_total"] = reference["total_s"] / entry["total_s"]
        entry["block_evaluation_ratio"] = entry["block_evaluations"] / reference["block_evaluations"]
    return table


# ----- report -----------------------------------------------------------------------------------------------------


def summary_text(results: dict[str, Any]) -> str:
    s = results["settings"]
    head = (
        f"Accelerators on Wan 2.1 T2V ({results['models']['what']}), {s['width']}x{s['height']}, {s['frames']} frames, "
        f"{s['steps']} euler steps, cfg {s['cfg']:g}, {len(s['prompts'])} prompts, {s['repeats']} rounds, "
        f"{s['device']}"
    )
    headers = ["variant", "sampling", "speed-up", "with decode", "blocks", "PSNR mean", "PSNR worst", "SSIM mean"]
    headers += ["SSIM worst", "peak RSS", "peak CUDA"]
    rows = []
    for name, v in results["variants"].items():
        cuda = v["peak_cuda_allocated_bytes"]
        rows.append(
            [
                name,
                f"{v['sample_s']:.3f} s",
                f"{v['speedup']:.2f}x",
                f"{v['speedup_total']:.2f}x",
                f"{v['block_evaluations']} ({v['block_evaluation_ratio']:.0%})",
                f"{v['psnr_db_mean']:.1f} dB",
                f"{v['psnr_db_worst']:.1f} dB",
                f"{v['ssim_mean']:.4f}",
                f"{v['ssim_worst']:.4f}",
                f"{v['peak_rss_bytes'] / MB:,.0f} MB",
                f"{cuda / MB:,.0f} MB" if cuda is not None else "n/a",
            ]
        )
    note = f"(PSNR {PSNR_CAP_DB:g} dB = identical frames; fidelity against the baseline's frames)"
    return "\n".join([head, "", format_table(headers, rows), note])


def plot(path: Path, results: dict[str, Any]) -> Path:
    """Speed-up against mean PSNR, one point per variant."""
    series = {name: [(v["speedup"], v["psnr_db_mean"])] for name, v in results["variants"].items()}
    s = results["settings"]
    chart = draw_line_chart(
        f"Accelerators: speed-up vs fidelity ({s['size']}, {s['device']})",
        "speed-up of sampling (x baseline)",
        "PSNR vs baseline (dB, mean over frames)",
        series,
        log_x=False,
    )
    return side_by_side(path, [chart])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--steps", type=int, help="sampler steps (default: the size's)")
    parser.add_argument("--frames", type=int, help="frames, 4n+1 (default: the size's)")
    parser.add_argument("--width", type=int, help="default: the size's")
    parser.add_argument("--height", type=int, help="default: the size's")
    parser.add_argument("--prompts", type=int, default=len(PROMPTS), help=f"how many of the {len(PROMPTS)} prompts")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS / "accelerators.json")
    args = parser.parse_args(argv)
    if not 1 <= args.prompts <= len(PROMPTS):
        parser.error(f"--prompts must be 1..{len(PROMPTS)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    return args


def preset_of(args: argparse.Namespace) -> SizePreset:
    """The size's preset with the command line's overrides."""
    default = SIZES[args.size]
    return SizePreset(
        args.width or default.width,
        args.height or default.height,
        args.frames or default.frames,
        args.steps or default.steps,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    preset = preset_of(args)
    prompts = PROMPTS[: args.prompts]
    started, load_before = time.perf_counter(), load_average()
    device = torch.device(args.device)
    memory = MemoryConfig(mode="cpu") if device.type == "cpu" else MemoryConfig()
    manager = ModelManager(memory, DeviceProbe())
    try:
        with tempfile.TemporaryDirectory(prefix="reelgraph-accelerators-bench-") as temp:
            files = write_models(args.size, Path(temp) / "models", SEED)
            _progress(f"models written under {files.models_dir}")
            bench = Bench(Nodes(manager, files.models_dir), device, files, preset, prompts)
            measured = measure(bench, variants_for(args.size), args.repeats)
    finally:
        manager.free()
    results = {
        "benchmark": "accelerators",
        "settings": {
            "size": args.size,
            "width": preset.width,
            "height": preset.height,
            "frames": preset.frames,
            "steps": preset.steps,
            "cfg": CFG,
            "seed": SEED,
            "prompts": list(prompts),
            "negative_prompt": NEGATIVE_PROMPT,
            "repeats": args.repeats,
            "device": args.device,
            "threads": torch.get_num_threads(),
        },
        "models": {"unet": files.unet, "text_encoder": files.text_encoder, "vae": files.vae, "what": files.what},
        "reference": REFERENCE,
        "psnr_cap_db": PSNR_CAP_DB,
        "ssim": {"window": SSIM_WINDOW, "sigma": SSIM_SIGMA, "k1": SSIM_K1, "k2": SSIM_K2, "on": "BT.601 luma"},
        "orders": measured.orders,
        "variants": figures(measured, variants_for(args.size)),
        "machine": torch_machine_info(device) | {"load_average": [load_before, load_average()]},
        "total_s": time.perf_counter() - started,
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    print(summary_text(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, allow_nan=False))
    print(f"\nwrote {args.out} and {plot(args.out.with_suffix('.png'), results)} in {results['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
