"""Executor benchmark: chains of N ``ImageInvert`` nodes, timed as a user pays per queue (validate + execute).

The graph is ``EmptyImage 512x512 -> N x ImageInvert -> ImageCrop -> PreviewImage``. For every N, in one
process, with a fresh executor and cache per N, three queues are timed: a full run (fresh cache each repeat),
a fully cached re-run of the identical prompt (nothing may run), and a run after the last node's widget (the
crop width) changed (exactly crop + preview may run). Medians over ``--repeats`` are printed against the
targets and ComfyUI's reference figures, written as JSON and drawn as a PNG.

    python bench/executor.py --sizes 10,100,500,2000 --repeats 5

The executor is assembled exactly as the app assembles it (``app.engine.build_engine``, default cache limits).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import torch  # noqa: E402

from app.config import AppConfig  # noqa: E402
from app.engine import build_engine  # noqa: E402
from bench.plot import Style, draw_line_chart, side_by_side  # noqa: E402
from bench.report import format_table  # noqa: E402
from graph.executor import Executor  # noqa: E402
from graph.prompt import Prompt  # noqa: E402
from graph.validation import validate_prompt  # noqa: E402
from nodes.folders import Folders  # noqa: E402

IMAGE_SIZE = 512
BASE_CROP_WIDTH = 512
FIXED_NODES = 3  # EmptyImage, ImageCrop, PreviewImage
FLAT_RANGE = (100, 2000)
TARGET_N = 500
TARGETS = {"flat_ratio": 2.0, "full_500_s": 0.5, "cached_500_s": 0.010}
REFERENCE_SOURCE = (
    "REFERENCE.md: ComfyUI 0.8 on this 2-core machine, CPU, chain of N ImageInvert on 512x512 + crop + preview, "
    "queued through the HTTP API over loopback, medians"
)
REFERENCE = {100: {"full": 0.13, "cached": 0.07}, 500: {"full": 3.5, "cached": 3.9, "changed": 2.4}}


# ----- the graph and one timed queue ---------------------------------------------------------------------------


def chain_prompt(n: int, crop_width: int) -> dict[str, Any]:
    """The API prompt: an empty 512x512 image, ``n`` inverts, a crop of ``crop_width``, a preview."""
    prompt: dict[str, Any] = {
        "0": {
            "class_type": "EmptyImage",
            "inputs": {"width": IMAGE_SIZE, "height": IMAGE_SIZE, "batch_size": 1, "color": 0},
        }
    }
    for index in range(1, n + 1):
        prompt[str(index)] = {"class_type": "ImageInvert", "inputs": {"image": [str(index - 1), 0]}}
    prompt["crop"] = {
        "class_type": "ImageCrop",
        "inputs": {"image": [str(n), 0], "width": crop_width, "height": IMAGE_SIZE, "x": 0, "y": 0},
    }
    prompt["preview"] = {"class_type": "PreviewImage", "inputs": {"images": ["crop", 0]}}
    return prompt


def changed_widths(repeats: int) -> list[int]:
    """Crop widths for the changed-widget runs, all different from each other and from the base width.

    Flipping 512/256 would not be a change after the first flip: the LRU cache still holds the 512 results.
    """
    return [IMAGE_SIZE // 2 + index for index in range(repeats)]


@dataclass(frozen=True)
class Queued:
    """One timed queue: seconds validating and executing, and how many nodes ran."""

    validate_s: float
    execute_s: float
    executed: int

    @property
    def total_s(self) -> float:
        return self.validate_s + self.execute_s


class ChainBench:
    """Queues chain prompts the way the server does: parse and validate, then execute."""

    def __init__(self, folders: Folders) -> None:
        self.config = AppConfig.from_dirs(folders.output_dir, folders.input_dir, folders.temp_dir)
        engine = build_engine(self.config)
        if engine.load_report.failures:
            raise RuntimeError(f"built-in nodes failed to load: {engine.load_report.failures}")
        self.registry = engine.registry
        self.cache_limits = {
            "max_bytes": self.config.cache.max_bytes,
            "min_free_bytes": self.config.cache.min_free_bytes,
        }

    def executor(self) -> Executor:
        """A fresh executor with an empty cache, assembled as the app does (a quarter of RAM, keep 10% free)."""
        return build_engine(self.config).executor

    async def queue(self, executor: Executor, api: dict[str, Any], expect_executed: int) -> Queued:
        """Validate and execute ``api``; fail loudly unless it succeeds having run ``expect_executed`` nodes."""
        gc.collect()
        started = time.perf_counter()
        validation = validate_prompt(Prompt.parse(api), self.registry)
        validated = time.perf_counter()
        result = await executor.execute(validation.prompt, validation.outputs)
        finished = time.perf_counter()
        if not validation.ok or result.status != "success":
            raise RuntimeError(f"queue failed: {validation.error or result.error}")
        if len(result.executed) != expect_executed:
            raise RuntimeError(f"expected {expect_executed} nodes to run, {len(result.executed)} did")
        return Queued(validated - started, finished - validated, len(result.executed))


def invert_loop_seconds(n: int) -> float:
    """Seconds for ``n`` chained ``1.0 - x`` on a 512x512 image, each result freeing the one before (as the chain)."""
    image = torch.zeros(1, IMAGE_SIZE, IMAGE_SIZE, 3)
    gc.collect()
    started = time.perf_counter()
    for _ in range(n):
        image = 1.0 - image
    return time.perf_counter() - started


# ----- measuring -----------------------------------------------------------------------------------------------


@dataclass
class SizeSamples:
    """Every sample taken for one N."""

    n: int
    full: list[Queued]
    compute_s: list[float]
    tail: list[Queued]
    cached: list[Queued]
    changed: list[Queued]


async def warm_up(bench: ChainBench) -> None:
    """Run torch and the whole engine once, so first-call costs land in no timing."""
    invert_loop_seconds(50)
    executor = bench.executor()
    await bench.queue(executor, chain_prompt(10, BASE_CROP_WIDTH), 10 + FIXED_NODES)
    await bench.queue(executor, chain_prompt(10, BASE_CROP_WIDTH), 0)
    await bench.queue(executor, chain_prompt(10, BASE_CROP_WIDTH - 1), 2)


async def measure_size(bench: ChainBench, n: int, repeats: int) -> SizeSamples:
    """Full runs (fresh cache each, interleaved with the two baselines), then cached and changed re-runs.

    The baselines: the invert compute alone (a plain torch loop), and the fixed tail alone (the N=0 graph,
    EmptyImage -> ImageCrop -> PreviewImage, queued like the chain).
    """
    full: list[Queued] = []
    compute: list[float] = []
    tail: list[Queued] = []
    executor = bench.executor()
    for _ in range(repeats):
        compute.append(invert_loop_seconds(n))
        tail.append(await bench.queue(bench.executor(), chain_prompt(0, BASE_CROP_WIDTH), FIXED_NODES))
        executor = bench.executor()
        full.append(await bench.queue(executor, chain_prompt(n, BASE_CROP_WIDTH), n + FIXED_NODES))
    cached = [await bench.queue(executor, chain_prompt(n, BASE_CROP_WIDTH), 0) for _ in range(repeats)]
    changed = [await bench.queue(executor, chain_prompt(n, width), 2) for width in changed_widths(repeats)]
    return SizeSamples(n, full, compute, tail, cached, changed)


def summarize(samples: SizeSamples) -> dict[str, float]:
    """Medians (seconds) and per-node figures (microseconds) for one N."""
    n = samples.n
    median = statistics.median
    full_s = median(q.total_s for q in samples.full)
    compute_s = median(samples.compute_s)
    tail_s = median(q.total_s for q in samples.tail)
    cached_s = median(q.total_s for q in samples.cached)
    return {
        "full_s": full_s,
        "full_validate_s": median(q.validate_s for q in samples.full),
        "full_execute_s": median(q.execute_s for q in samples.full),
        "compute_s": compute_s,
        "overhead_s": full_s - compute_s,
        "tail_s": tail_s,
        "cached_s": cached_s,
        "cached_validate_s": median(q.validate_s for q in samples.cached),
        "changed_s": median(q.total_s for q in samples.changed),
        "full_us_per_node": full_s / n * 1e6,
        "overhead_us_per_node": (full_s - compute_s) / n * 1e6,
        "marginal_us_per_node": (full_s - compute_s - tail_s) / n * 1e6,
        "cached_us_per_node": cached_s / n * 1e6,
    }


# ----- targets and the reference ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One target: what it asks, the measured value, and whether it holds (None: not measured)."""

    target: str
    value: str
    passed: bool | None


def check_targets(summaries: dict[int, dict[str, float]]) -> list[Check]:
    """The acceptance targets against the medians."""
    low, high = FLAT_RANGE
    flat = [s["marginal_us_per_node"] for n, s in summaries.items() if low <= n <= high]
    if len(flat) >= 2 and min(flat) > 0:
        ratio = max(flat) / min(flat)
        flat_check = Check(_flat_label(), f"{ratio:.2f}x", ratio <= TARGETS["flat_ratio"])
    else:
        flat_check = Check(_flat_label(), "n/a" if len(flat) < 2 else "n/a: overhead <= 0 (noise)", None)
    at_target = summaries.get(TARGET_N)
    full = at_target["full_s"] if at_target else None
    cached = at_target["cached_s"] if at_target else None
    return [
        flat_check,
        _threshold_check(f"{TARGET_N}-node full run < {TARGETS['full_500_s']} s", full, TARGETS["full_500_s"]),
        _threshold_check(
            f"cached {TARGET_N}-node re-run < {TARGETS['cached_500_s'] * 1e3:g} ms", cached, TARGETS["cached_500_s"]
        ),
    ]


def _ratio(value: float) -> str:
    return f"{value:.1f}x" if value < 10 else f"{value:,.0f}x"


def _flat_label() -> str:
    return f"marginal overhead/node flat N={FLAT_RANGE[0]}..{FLAT_RANGE[1]} (max/min <= {TARGETS['flat_ratio']:g}x)"


def _threshold_check(target: str, seconds: float | None, limit: float) -> Check:
    if seconds is None:
        return Check(target, "n/a", None)
    return Check(target, _seconds(seconds), seconds < limit)


def reference_rows(summaries: dict[int, dict[str, float]]) -> list[list[str]]:
    """Rows of ours vs ComfyUI's reference figures, with the speedup."""
    rows = []
    for n, figures in REFERENCE.items():
        if n not in summaries:
            continue
        for kind, theirs in figures.items():
            ours = summaries[n][f"{kind}_s"]
            rows.append([KIND_NAMES[kind], str(n), _seconds(ours), _seconds(theirs), _ratio(theirs / ours)])
    return rows


KIND_NAMES = {"full": "full run", "cached": "cached re-run", "changed": "last widget changed"}


# ----- reporting -----------------------------------------------------------------------------------------------


def _seconds(value: float) -> str:
    """``1.23 s``, ``45.6 ms`` or ``789 us``: three significant figures in a readable unit."""
    if value >= 1:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} us"


def size_rows(summaries: dict[int, dict[str, float]]) -> list[list[str]]:
    rows = []
    for n, s in summaries.items():
        rows.append(
            [
                str(n),
                _seconds(s["full_s"]),
                f"{s['full_us_per_node']:.1f}",
                _seconds(s["full_validate_s"]),
                _seconds(s["compute_s"]),
                f"{s['overhead_us_per_node']:.1f}",
                f"{s['marginal_us_per_node']:.1f}",
                _seconds(s["cached_s"]),
                f"{s['cached_us_per_node']:.2f}",
                _seconds(s["changed_s"]),
            ]
        )
    return rows


SIZE_HEADERS = (
    "N",
    "full run",
    "us/node",
    "validate",
    "invert compute",
    "overhead us/node",
    "marginal us/node",
    "cached re-run",
    "cached us/node",
    "widget changed",
)


def summary_text(summaries: dict[int, dict[str, float]], checks: list[Check], machine: dict[str, Any]) -> str:
    """The printed report: per-N medians, ComfyUI comparison, targets."""
    verdict = {True: "PASS", False: "FAIL", None: "n/a"}
    header = (
        f"Executor benchmark: EmptyImage {IMAGE_SIZE}x{IMAGE_SIZE} -> N x ImageInvert -> ImageCrop -> PreviewImage\n"
        f"medians of {machine['repeats']}, each queue = parse + validate_prompt + execute; "
        f"torch {machine['torch']}, {machine['torch_threads']} threads, {machine['cpu_count']} CPUs, "
        f"THP_MEM_ALLOC_ENABLE={machine['THP_MEM_ALLOC_ENABLE']}"
    )
    return "\n\n".join(
        [
            header,
            format_table(SIZE_HEADERS, size_rows(summaries)),
            f"vs ComfyUI ({REFERENCE_SOURCE})\n"
            + format_table(("", "N", "Reelgraph", "ComfyUI", "speedup"), reference_rows(summaries)),
            format_table(("target", "measured", "result"), [[c.target, c.value, verdict[c.passed]] for c in checks]),
            "overhead = full run - the same number of `1.0 - x` torch ops in a plain loop (it still holds the\n"
            "fixed tail: EmptyImage, crop, preview PNG); marginal = overhead - the N=0 graph queued alone, per node\n"
            "(the engine's own cost per ImageInvert node; the flatness target is judged on it).",
        ]
    )


def machine_info(repeats: int) -> dict[str, Any]:
    """What the numbers depend on."""
    thp_path = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "repeats": repeats,
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_bytes": psutil.virtual_memory().total,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "kernel_transparent_hugepage": thp_path.read_text().strip() if thp_path.exists() else None,
    }


def _cpu_model() -> str | None:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return platform.processor() or None
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return None


def results_json(
    samples: list[SizeSamples],
    summaries: dict[int, dict[str, float]],
    checks: list[Check],
    machine: dict[str, Any],
    cache_limits: dict[str, int],
) -> dict[str, Any]:
    """Everything measured, for bench/results."""
    return {
        "benchmark": "executor chain",
        "graph": f"EmptyImage {IMAGE_SIZE}x{IMAGE_SIZE} -> N x ImageInvert -> ImageCrop (width varied) -> PreviewImage",
        "timed": "Prompt.parse + validate_prompt + Executor.execute, in process, fresh executor and cache per N",
        "overhead": "full run minus N chained `1.0 - x` torch ops timed in a plain loop",
        "marginal": "overhead minus the N=0 graph (EmptyImage -> ImageCrop -> PreviewImage) queued alone, per node",
        "machine": machine,
        "cache_limits": cache_limits,
        "sizes": [s.n for s in samples],
        "medians": {str(n): s for n, s in summaries.items()},
        "samples": {
            str(s.n): {
                "full": [asdict(q) for q in s.full],
                "compute_s": s.compute_s,
                "tail": [asdict(q) for q in s.tail],
                "cached": [asdict(q) for q in s.cached],
                "changed": [asdict(q) for q in s.changed],
                "changed_crop_widths": changed_widths(len(s.changed)),
            }
            for s in samples
        },
        "targets": [asdict(c) for c in checks],
        "reference_comfyui": {"source": REFERENCE_SOURCE, "seconds": {str(n): f for n, f in REFERENCE.items()}},
    }


def _positive(name: str, summaries: dict[int, dict[str, float]], key: str) -> dict[str, list[tuple[float, float]]]:
    """The series ``key`` over N for a log axis: values <= 0 are left out, and the name says so."""
    points = [(float(n), s[key]) for n, s in summaries.items() if s[key] > 0]
    if not points:
        return {}
    return {name if len(points) == len(summaries) else f"{name} (values <= 0 left out)": points}


def plot(path: Path, summaries: dict[int, dict[str, float]]) -> Path:
    """Per-node full-run microseconds and re-run milliseconds against N, ours and ComfyUI's."""
    per_node = {
        "full run (validate + execute)": [(n, s["full_us_per_node"]) for n, s in summaries.items()],
        **_positive("engine overhead (minus invert compute)", summaries, "overhead_us_per_node"),
        **_positive("marginal engine cost per node (minus fixed tail)", summaries, "marginal_us_per_node"),
        "ComfyUI full run": [(n, f["full"] / n * 1e6) for n, f in REFERENCE.items()],
    }
    reruns = {
        "fully cached re-run": [(n, s["cached_s"] * 1e3) for n, s in summaries.items()],
        "last widget changed": [(n, s["changed_s"] * 1e3) for n, s in summaries.items()],
        "ComfyUI cached re-queue": [(n, f["cached"] * 1e3) for n, f in REFERENCE.items()],
        "ComfyUI last widget changed": [(n, f["changed"] * 1e3) for n, f in REFERENCE.items() if "changed" in f],
    }
    blue, red, green = "#1f77b4", "#d62728", "#2ca02c"
    per_node_styles = {"full run (validate + execute)": Style(blue), "ComfyUI full run": Style(blue, dashed=True)}
    rerun_styles = {
        "fully cached re-run": Style(green),
        "last widget changed": Style(red),
        "ComfyUI cached re-queue": Style(green, dashed=True),
        "ComfyUI last widget changed": Style(red, dashed=True),
    }
    x_label = "N (ImageInvert nodes in the chain)"
    charts = [
        draw_line_chart(
            "Full run, per node", x_label, "microseconds per node", per_node, log_y=True, styles=per_node_styles
        ),
        draw_line_chart("Re-runs after a full run", x_label, "milliseconds", reruns, log_y=True, styles=rerun_styles),
    ]
    return side_by_side(path, charts)


# ----- main ----------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,500,2000", help="chain lengths N, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="samples per measurement (medians are reported)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/executor.json", help="JSON results")
    parser.add_argument("--plot", type=Path, default=ROOT / "bench/results/executor.png", help="PNG chart")
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    if not args.sizes or min(args.sizes) < 1 or args.repeats < 1:
        parser.error("sizes and repeats must be positive")
    return args


async def run(sizes: list[int], repeats: int, bench: ChainBench) -> list[SizeSamples]:
    await warm_up(bench)
    samples = []
    for n in sizes:
        samples.append(await measure_size(bench, n, repeats))
        print(f"N={n} done", file=sys.stderr)
    return samples


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reelgraph-bench-") as temp:
        bench = ChainBench(Folders.under(Path(temp)))
        samples = asyncio.run(run(args.sizes, args.repeats, bench))
    summaries = {s.n: summarize(s) for s in samples}
    checks = check_targets(summaries)
    machine = machine_info(args.repeats)
    print(summary_text(summaries, checks, machine))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results_json(samples, summaries, checks, machine, bench.cache_limits), indent=2))
    print(f"\nwrote {args.out} and {plot(args.plot, summaries)}")


if __name__ == "__main__":
    main()
