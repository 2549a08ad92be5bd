"""Sampling benchmark: our graph against the bare diffusers pipeline call, same work, in one process, for each video
family (``--families``: wan, ltxv, hunyuan_video, mochi, svd, animatediff, cogvideox, skyreels_df; default all the
``--size`` has models for).

Both sides do the same denoising work from the same files: N sampler steps (euler; UniPC for SkyReels diffusion
forcing; with classifier-free guidance where the family's workflow uses it: two network forwards per step) over the
sigmas of the family's diffusers scheduler, from the same seeded CPU noise, then a VAE decode to float32 frames on the
CPU. The graphs and pipeline calls of each family are in ``bench/sampling_families.py`` and (the issue-10 families)
``bench/sampling_families_more.py``.

- ours: the family's API prompt (loaders, text encoding, the empty latent, the sampler node ``sample``, ``VAEDecode``
  and a bench-only output node that keeps the frames: no encoding, no file), queued as the server does:
  ``Prompt.parse`` + ``validate_prompt`` + ``Executor.execute`` on the engine the app builds (cache, events, memory
  manager). Loaders and text encodings come from the output cache (the seed changes every repeat, so sampling and
  decode always run).
- diffusers: ``WanPipeline`` / ``LTXPipeline`` / ``HunyuanVideoPipeline`` / ``MochiPipeline`` / ... called with
  precomputed prompt embeddings and ``output_type="np"``, its networks loaded by diffusers/transformers
  ``from_pretrained`` from folders holding the same weights (the files' values; SVD and AnimateDiff, whose single
  files diffusers cannot load, from the modules our converters make of them), on the same device and in the same
  dtypes; the embeddings come from ``encode_prompt`` before timing. Text encoding is therefore timed on neither side.
  Where a pipeline draws its noise in another order or scale, it gets our seed's noise as ``latents``.

Models (``bench/sampling_models.py``): ``tiny`` = the ``models/tiny`` stand-ins (every family); ``480p`` = a
real-size random Wan 2.1 T2V 1.3B transformer and 2.1 VAE (bfloat16 files), with a random UMT5 as wide as UMT5-XXL
(4096) but one thin block, since the text encoder is timed on neither side and only the width of its output must be
real (Wan only).

Warm runs only (two untimed runs of ours first, the first loading the models, and one of diffusers), the order
alternating every repeat; medians of wall and CPU time, the overhead ratio ours / diffusers - 1 (target: under 5%),
per-step intervals, and the largest difference between the two sides' frames for the same seed (the check that the
comparison is of the same work). The JSON keeps Wan's figures at its top level (as before families) and every
family's under ``families``.

    python bench/sampling.py                                   # tiny random models on the CPU, every family
    python bench/sampling.py --threads 1                       # the same, steadier on a busy CPU
    python bench/sampling.py --families ltxv,mochi --repeats 3 # some families, fewer repeats
    python bench/sampling.py --device cuda --size 480p         # real-size random Wan 2.1 1.3B, 832x480, 81 frames
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from app.config import AppConfig  # noqa: E402
from app.engine import Engine, build_engine  # noqa: E402
from bench.plot import Style, draw_line_chart, in_rows  # noqa: E402
from bench.report import format_table, load_average, torch_machine_info  # noqa: E402
from bench.sampling_families import FAMILIES as VIDEO_FAMILIES  # noqa: E402
from bench.sampling_families import SAMPLER_NODE, DiffusersCall, Family, Preset, Settings  # noqa: E402
from bench.sampling_families_more import MORE_FAMILIES  # noqa: E402
from bench.sampling_models import ModelSet, write_model_set  # noqa: E402
from bench.timing import Stopwatch, Timed  # noqa: E402
from graph import events  # noqa: E402
from graph.prompt import Prompt  # noqa: E402
from graph.validation import validate_prompt  # noqa: E402
from models.memory_types import MemoryConfig  # noqa: E402
from models.model_loaders import compute_dtype_for  # noqa: E402

TARGET_OVERHEAD = 0.05
FAMILIES: Mapping[str, Family] = MappingProxyType({**VIDEO_FAMILIES, **MORE_FAMILIES})
"""Every benchmarked family by ``--families`` name, in report order."""
SIZES = ("tiny", "480p")
LEGACY_FAMILY = "wan"  # its figures also stay at the JSON's top level, as before families


# ----- ours: the graph through the executor ----------------------------------------------------------------------


class FrameStore:
    """Where the bench's output node leaves the last frames it received."""

    def __init__(self) -> None:
        self.frames: torch.Tensor | None = None


def frames_node(store: FrameStore) -> type:
    """An output node class that keeps its ``IMAGE`` input in ``store`` (standing in for a Save node, without the
    encoding, so both sides end at frames in memory)."""

    class BenchFrames:
        FUNCTION = "keep"
        CATEGORY = "bench"
        RETURN_TYPES = ()
        OUTPUT_NODE = True
        DESCRIPTION = "Keeps the frames for the benchmark's comparison."

        @classmethod
        def INPUT_TYPES(cls) -> dict[str, Any]:
            return {"required": {"images": ("IMAGE", {})}}

        def keep(self, images: torch.Tensor) -> tuple[()]:
            store.frames = images
            return ()

    return BenchFrames


class StepClock:
    """An event sink marking the stopwatch when the sampler node reports a finished step."""

    def __init__(self, watch: Stopwatch) -> None:
        self.watch = watch

    def emit(self, event: events.Event) -> None:
        if isinstance(event, events.Progress) and event.node_id == SAMPLER_NODE and event.value >= 1:
            self.watch.mark()


def api_prompt(models: ModelSet, settings: Settings, seed: int) -> dict[str, Any]:
    """The family's text-to-video graph in API format; only the seed changes between repeats."""
    return FAMILIES[settings.family].graph(models, settings, seed)


class OursRunner:
    """Queues the graph on an engine built as the app builds it, models from ``models_dir``."""

    def __init__(self, settings: Settings, models: ModelSet, work: Path) -> None:
        self.settings = settings
        self.models = models
        self.device = torch.device(settings.device)
        memory = MemoryConfig(mode="cpu") if self.device.type == "cpu" else MemoryConfig()
        config = AppConfig.from_dirs(
            work / "output", work / "input", work / "temp", models_dir=models.models_dir, memory=memory
        )
        self.watch = Stopwatch(self.device)
        self.engine: Engine = build_engine(config, sink=StepClock(self.watch))
        if self.engine.load_report.failures:
            raise RuntimeError(f"built-in nodes failed to load: {self.engine.load_report.failures}")
        self.store = FrameStore()
        self.engine.registry.register("BenchFrames", frames_node(self.store))

    async def run(self, seed: int, warm: bool = True) -> Timed:
        """Parse, validate and execute the prompt for ``seed``; when ``warm``, only sampling and decode may run."""
        api = api_prompt(self.models, self.settings, seed)
        self.store.frames = None
        with self.watch:
            validation = validate_prompt(Prompt.parse(api), self.engine.registry)
            if not validation.ok:
                raise RuntimeError(f"the prompt is invalid: {validation.error} {validation.node_errors}")
            result = await self.engine.executor.execute(validation.prompt, validation.outputs)
        if result.status != "success":
            error = result.error
            raise RuntimeError(f"our run failed: {error.node_type}: {error.exception_message}" if error else "")
        expected = FAMILIES[self.settings.family].run_nodes
        if warm and sorted(result.executed) != sorted(expected):
            raise RuntimeError(f"a warm run should execute {list(expected)}, it executed {result.executed}")
        if self.store.frames is None:
            raise RuntimeError("the frames node received nothing")
        return Timed.of(self.watch, self.store.frames.numpy())


# ----- diffusers: the bare pipeline call -------------------------------------------------------------------------


class DiffusersRunner:
    """The family's pipeline over diffusers' own loading of the same weights; embeddings computed once, untimed."""

    def __init__(self, settings: Settings, models: ModelSet) -> None:
        self.settings = settings
        self.device = torch.device(settings.device)
        self.call: DiffusersCall = FAMILIES[settings.family].diffusers(
            models, settings, self.device, compute_dtype_for(self.device)
        )

    def run(self, seed: int) -> Timed:
        """One pipeline call for ``seed`` (noise drawn on the CPU, as ours)."""
        watch = Stopwatch(self.device)

        def on_step(_pipeline: Any, _index: int, _timestep: Any, _tensors: dict[str, Any]) -> dict[str, Any]:
            watch.mark()
            return {}

        settings = self.settings
        with watch:
            frames = self.call.pipeline(
                **self.call.kwargs,
                **self.call.per_seed(seed),
                height=settings.height,
                width=settings.width,
                num_frames=settings.frames,
                num_inference_steps=settings.steps,
                generator=torch.Generator().manual_seed(seed),
                output_type="np",
                callback_on_step_end=on_step,
            ).frames
        return Timed.of(watch, np.asarray(frames[0]))


# ----- measuring --------------------------------------------------------------------------------------------------


@dataclass
class Samples:
    """Every timed run of both sides, per repeat in the order they ran."""

    seeds: list[int] = field(default_factory=list)
    order: list[list[str]] = field(default_factory=list)
    ours: list[dict[str, Any]] = field(default_factory=list)
    diffusers: list[dict[str, Any]] = field(default_factory=list)
    max_abs_diff: list[float] = field(default_factory=list)
    frames_shape: list[int] = field(default_factory=list)
    frames_std: float = 0.0
    warmup_s: dict[str, float] = field(default_factory=dict)


async def measure(settings: Settings, ours: OursRunner, theirs: DiffusersRunner) -> Samples:
    """Untimed warm-ups (ours twice: the first loads its models and encodes the prompts; diffusers once), then
    ``repeats`` pairs on a new seed each, the side that goes first alternating."""
    samples = Samples()
    started = time.perf_counter()
    await ours.run(settings.seed, warm=False)
    samples.warmup_s["ours_cold"] = time.perf_counter() - started
    samples.warmup_s["ours_warm"] = (await ours.run(settings.seed + 1)).total_s
    samples.warmup_s["diffusers"] = theirs.run(settings.seed).total_s
    for repeat in range(settings.repeats):
        seed = settings.seed + 2 + repeat
        order = ["ours", "diffusers"] if repeat % 2 == 0 else ["diffusers", "ours"]
        runs: dict[str, Timed] = {}
        for side in order:
            runs[side] = await ours.run(seed) if side == "ours" else theirs.run(seed)
        ours_frames, their_frames = runs["ours"].frames, runs["diffusers"].frames
        if ours_frames.shape != their_frames.shape:
            raise RuntimeError(f"frames differ in shape: ours {ours_frames.shape}, diffusers {their_frames.shape}")
        samples.seeds.append(seed)
        samples.order.append(order)
        samples.ours.append(runs["ours"].figures())
        samples.diffusers.append(runs["diffusers"].figures())
        samples.max_abs_diff.append(float(np.abs(ours_frames - their_frames).max()))
        samples.frames_shape = list(ours_frames.shape)
        samples.frames_std = float(ours_frames.std())
        print(
            f"{settings.family} repeat {repeat + 1}/{settings.repeats}: ours {runs['ours'].total_s:.3f} s, "
            f"diffusers {runs['diffusers'].total_s:.3f} s",
            file=sys.stderr,
            flush=True,
        )
    return samples


def medians(runs: list[dict[str, Any]], steps: int) -> dict[str, float | None]:
    """Medians over repeats of each figure, and seconds per step (total / steps)."""

    def median_of(key: str) -> float | None:
        values = [run[key] for run in runs if run[key] is not None]
        return statistics.median(values) if values else None

    total = median_of("total_s")
    return {
        "total_s": total,
        "s_per_step": total / steps if total is not None else None,
        "first_step_s": median_of("first_step_s"),
        "step_s": median_of("step_s"),
        "tail_s": median_of("tail_s"),
        "min_total_s": min(run["total_s"] for run in runs),
        "cpu_s": median_of("cpu_s"),
    }


def overhead(samples: Samples, summary: dict[str, dict[str, float | None]]) -> dict[str, Any]:
    """ours / diffusers - 1 from the medians (the headline), from the fastest runs, and per pair."""
    ours, theirs = summary["ours"], summary["diffusers"]
    assert ours["total_s"] is not None and theirs["total_s"] is not None
    ratio = ours["total_s"] / theirs["total_s"] - 1
    pairs = [a["total_s"] / b["total_s"] - 1 for a, b in zip(samples.ours, samples.diffusers, strict=True)]
    return {
        "ratio": ratio,
        "min_ratio": ours["min_total_s"] / theirs["min_total_s"] - 1,
        "paired_median_ratio": statistics.median(pairs),
        "paired_ratios": pairs,
        "seconds": ours["total_s"] - theirs["total_s"],
        "cpu_ratio": ours["cpu_s"] / theirs["cpu_s"] - 1 if ours["cpu_s"] and theirs["cpu_s"] else None,
        "target": TARGET_OVERHEAD,
        "passed": ratio < TARGET_OVERHEAD,
    }


# ----- report -----------------------------------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 1:
        return f"{value:.3g} s"
    return f"{value * 1e3:.3g} ms"


def family_text(entry: dict[str, Any]) -> str:
    """The printed report of one family."""
    s, family = entry["settings"], FAMILIES[entry["settings"]["family"]]
    shift = "dynamic (by tokens)" if s["shift"] is None else f"{s['shift']:g}"
    schedule = family.schedule or f"shift {shift}"
    network = entry["models"].get("transformer") or entry["models"]["unet"]
    head = (
        f"{family.title} ({s['size']}: {network['description']}), "
        f"{s['width']}x{s['height']}, {s['frames']} frames, {s['steps']} {family.sampler} steps, cfg {s['cfg']:g}, "
        f"{schedule}, {s['device']} {s['dtype']}; medians of {s['repeats']} warm runs each, order alternated"
    )
    rows = []
    for side, label in (("ours", "ours (graph via executor)"), ("diffusers", f"diffusers {family.pipeline}")):
        m = entry["medians"][side]
        rows.append(
            [
                label,
                _seconds(m["total_s"]),
                _seconds(m["min_total_s"]),
                _seconds(m["s_per_step"]),
                _seconds(m["first_step_s"]),
                _seconds(m["step_s"]),
                _seconds(m["tail_s"]),
                _seconds(m["cpu_s"]),
            ]
        )
    headers = ("", "median", "fastest", "per step", "to step 1", "step", "decode+out", "CPU time")
    o = entry["overhead"]
    verdict = "PASS" if o["passed"] else "FAIL"
    lines = [
        f"overhead ours/diffusers - 1 = {o['ratio'] * 100:+.1f}% ({o['seconds'] * 1e3:+.1f} ms per run; "
        f"target < {o['target'] * 100:g}%: {verdict}); fastest runs {o['min_ratio'] * 100:+.1f}%, "
        f"median of pairs {o['paired_median_ratio'] * 100:+.1f}%"
        + (f", CPU time {o['cpu_ratio'] * 100:+.1f}%" if o["cpu_ratio"] is not None else ""),
        f"frames: max |ours - diffusers| = {max(entry['frames']['max_abs_diff']):.2e} over {s['repeats']} seeds "
        f"(frames {entry['frames']['shape']}, std {entry['frames']['std']:.3f})",
    ]
    return "\n\n".join([head, format_table(headers, rows), "\n".join(lines)])


def summary_text(results: dict[str, Any]) -> str:
    """The printed report: each family's table, then one line per family."""
    machine = results["machine"]
    head = f"Sampling benchmark: torch {machine['torch']}, {machine['torch_threads']} threads"
    parts = [head] + [family_text(entry) for entry in results["families"].values()]
    rows = [
        [
            name,
            _seconds(entry["medians"]["ours"]["total_s"]),
            _seconds(entry["medians"]["diffusers"]["total_s"]),
            f"{entry['overhead']['ratio'] * 100:+.1f}%",
            f"{entry['overhead']['paired_median_ratio'] * 100:+.1f}%",
            f"{max(entry['frames']['max_abs_diff']):.2e}",
            "PASS" if entry["overhead"]["passed"] else "FAIL",
        ]
        for name, entry in results["families"].items()
    ]
    headers = ("family", "ours", "diffusers", "overhead", "paired", "max |diff|", f"< {TARGET_OVERHEAD * 100:g}%")
    parts.append("summary (medians):\n" + format_table(headers, rows))
    notes = [
        "to step 1 = from queueing (ours: parse + validate + execute) or the call (diffusers) to the end of step 1; "
        "step = median interval between steps 2..N; decode+out = after the last step to the frames on the CPU;\n"
        "CPU time = the process's CPU seconds in the run (all threads; steadier than wall time on a busy CPU).",
    ]
    load = machine.get("load_average")
    if load and load[0] is not None:
        notes.append(f"load average (1 min) before / after: {load[0][0]:.2f} / {load[1][0]:.2f}")
    parts.append("\n".join(notes))
    return "\n\n".join(parts)


def _family_charts(name: str, entry: dict[str, Any]) -> list[Any]:
    """Seconds per run over the repeats, and the median interval of each step, for both sides of one family."""
    styles = {"ours (graph)": Style("#1f77b4"), "diffusers": Style("#d62728", dashed=True)}
    sides = (("ours (graph)", "ours"), ("diffusers", "diffusers"))
    samples = entry["samples"]
    per_run = {label: [(float(i + 1), run["total_s"]) for i, run in enumerate(samples[key])] for label, key in sides}
    per_step: dict[str, list[tuple[float, float]]] = {}
    for label, key in sides:
        intervals = [run["step_intervals_s"] for run in samples[key]]
        count = min(len(values) for values in intervals)
        per_step[label] = [(float(i + 1), statistics.median(v[i] for v in intervals)) for i in range(count)]
    return [
        draw_line_chart(f"{name}: seconds per run (warm)", "repeat", "seconds", per_run, log_x=False, styles=styles),
        draw_line_chart(
            f"{name}: median seconds per step",
            "step (1: from queueing / the call)",
            "seconds",
            per_step,
            log_x=False,
            styles=styles,
        ),
    ]


def plot(path: Path, results: dict[str, Any]) -> Path:
    """One row of charts per family."""
    return in_rows(path, [_family_charts(name, entry) for name, entry in results["families"].items()])


# ----- command line -----------------------------------------------------------------------------------------------


def _families(value: str) -> tuple[str, ...]:
    if value == "all":
        return tuple(FAMILIES)
    names = tuple(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    unknown = [name for name in names if name not in FAMILIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown families {unknown or value!r}; choose from {', '.join(FAMILIES)} (comma-separated) or all"
        )
    return names


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if available")
    parser.add_argument("--size", choices=(*SIZES, "auto"), default="auto", help="auto: tiny on cpu, 480p on cuda")
    parser.add_argument(
        "--families",
        type=_families,
        default=None,
        help=f"comma-separated from {', '.join(FAMILIES)}, or all (default: all that --size has models for)",
    )
    parser.add_argument("--steps", type=int, help="sampler steps (tiny 8, the issue-10 families 5; 480p 10)")
    parser.add_argument("--frames", type=int, help="video frames, 1 + the family's temporal step (tiny: 17, mochi 13)")
    parser.add_argument("--width", type=int, help="picture width, a multiple of 16 (ltxv 32) (tiny 128, 480p 832)")
    parser.add_argument("--height", type=int, help="picture height, a multiple of 16 (ltxv 32) (tiny 128, 480p 480)")
    parser.add_argument("--repeats", type=int, help="timed runs per side and family (tiny 10, 480p 3)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny, small, few frames, steps, 2 repeats")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sampling.json", help="JSON results")
    parser.add_argument("--plot", type=Path, help="PNG chart (default: --out with .png)")
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    elif args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    if args.quick and args.size == "480p":
        parser.error("--quick runs the tiny models")
    if args.size == "auto":
        args.size = "tiny" if args.quick or args.device == "cpu" else "480p"
    if args.families is None:
        args.families = tuple(name for name, family in FAMILIES.items() if args.size in family.presets)
    lacking = [name for name in args.families if args.size not in FAMILIES[name].presets]
    if lacking:
        parser.error(f"--size {args.size}: no {args.size} models for {', '.join(lacking)} (use --size tiny)")
    for name in ("steps", "repeats", "width", "height", "frames"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1")
    for name in args.families:
        family = FAMILIES[name]
        size = family.spatial_multiple
        if any(value is not None and value % size for value in (args.width, args.height)):
            parser.error(f"--width and --height must be multiples of {size} for {name}")
        if args.frames is not None and (args.frames - 1) % family.frame_step:
            parser.error(f"--frames must be 1 + a multiple of {family.frame_step} for {name} (its VAE's compression)")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.plot is None:
        args.plot = args.out.with_suffix(".png")
    return args


def family_settings(args: argparse.Namespace, family: Family) -> Settings:
    """The run of ``family``: its preset for ``--size`` (or ``--quick``), overridden by the options given."""
    preset: Preset = family.quick if args.quick else family.presets[args.size]
    chosen = {name: getattr(args, name) for name in ("width", "height", "frames", "steps", "repeats")}
    values = {name: getattr(preset, name) if value is None else value for name, value in chosen.items()}
    return Settings(args.size, args.device, **values, shift=family.shift, cfg=family.cfg, family=family.name)


async def run(settings: Settings, models: ModelSet, work: Path) -> tuple[Samples, dict[str, Any]]:
    """Build both sides of one family, measure; the samples and what the diffusers side's models hold."""
    ours = OursRunner(settings, models, work / settings.family)
    theirs = DiffusersRunner(settings, models)
    return await measure(settings, ours, theirs), dict(theirs.call.models)


def family_entry(settings: Settings, samples: Samples, described: dict[str, Any], dtype: str, quick: bool) -> dict:
    """One family's figures, with the keys the JSON had before families."""
    summary = {"ours": medians(samples.ours, settings.steps), "diffusers": medians(samples.diffusers, settings.steps)}
    family = FAMILIES[settings.family]
    return {
        "benchmark": f"sampling: our graph via the executor vs the bare diffusers {family.pipeline} call",
        "settings": asdict(settings) | {"dtype": dtype, "quick": quick},
        "timed": {
            "ours": "Prompt.parse + validate_prompt + Executor.execute of the API prompt (loaders and text encodings "
            "from the output cache; the sampler node, VAEDecode and an output node keeping the frames run)",
            "diffusers": f"{family.pipeline}.__call__(prompt_embeds=..., ..., output_type='np')",
            "not_timed": "model loading, text encoding (cached by ours, precomputed for diffusers), the warm-up runs",
            "step_marks": "ours: the sampler node's progress events; diffusers: callback_on_step_end; "
            "on CUDA taken without synchronizing, so totals stay honest",
        },
        "models": described,
        "samples": asdict(samples),
        "medians": summary,
        "overhead": overhead(samples, summary),
        "frames": {"max_abs_diff": samples.max_abs_diff, "shape": samples.frames_shape, "std": samples.frames_std},
    }


def _quiet_libraries() -> None:
    """Keep diffusers' and transformers' info messages and progress bars (saving, loading) out of the report, and
    the warning diffusers' Mochi transformer gives at every call on the CPU (its float32 autocast is a no-op)."""
    import diffusers
    import transformers

    warnings.filterwarnings("ignore", message="In CPU autocast, but the target dtype is not supported")
    for library in (diffusers, transformers):
        library.utils.logging.set_verbosity_error()
        library.utils.logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _quiet_libraries()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = str(compute_dtype_for(device)).removeprefix("torch.")
    started = time.perf_counter()
    load_before = load_average()
    entries: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="reelgraph-sampling-bench-") as temp:
        work = Path(temp)
        first = family_settings(args, FAMILIES[args.families[0]])
        models = write_model_set(args.size, work / "models", first.seed)
        print(f"models written under {models.models_dir}", file=sys.stderr, flush=True)
        for name in args.families:
            settings = family_settings(args, FAMILIES[name])
            samples, described = asyncio.run(run(settings, models, work))
            entries[name] = family_entry(settings, samples, described, dtype, args.quick)
    legacy = entries.get(LEGACY_FAMILY, next(iter(entries.values())))
    results = {
        **{key: legacy[key] for key in ("benchmark", "settings", "timed", "models", "samples", "medians", "overhead")},
        "frames": legacy["frames"],
        "top_level_family": legacy["settings"]["family"],
        "families": entries,
        "machine": torch_machine_info(device) | {"load_average": [load_before, load_average()]},
        "total_s": time.perf_counter() - started,
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    print(summary_text(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out} and {plot(args.plot, results)} in {results['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
