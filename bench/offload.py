"""Offload policy benchmark: seconds per transformer forward and peak resident bytes, per policy.

A ``WanTransformer3DModel`` with seeded random weights runs the same forward under each offload policy of
``models.offload`` (onload = the compute device, offload = the CPU; ``disk`` writes its groups to a temp folder). Each
policy runs in its own child process, so memory figures do not mix: after one warm-up forward it times ``--repeats``
forwards and reports the policy's peak resident bytes on the device by ``AppliedOffload``'s hook accounting, the
process RSS (sampled during the forwards, and ``ru_maxrss`` over the whole process, model build included), on CUDA
``torch.cuda.max_memory_allocated()``, and the largest absolute difference of its output from ``resident``'s (run
first; its output is passed on through a ``.pt`` file), so every figure comes with a correctness check.

``resident`` always runs (it is the reference for the output difference and the time ratio). ``model`` is not run by
default: for one forward it places the model as ``resident`` does; here each of its timed forwards also moves the
weights to the device and back to the CPU (the case where the ModelManager evicts it between uses), which on a CPU
moves nothing, so it equals ``resident`` there.

    python bench/offload.py                      # CPU here; CUDA (bfloat16) on a GPU machine
    python bench/offload.py --device cpu --repeats 5 --policies resident block leaf disk
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import torch  # noqa: E402

from bench.plot import Style, draw_line_chart, side_by_side  # noqa: E402
from bench.report import format_table, load_average, torch_machine_info  # noqa: E402
from models.offload import POLICIES, OffloadConfig, apply_offload  # noqa: E402
from models.offload_policy import offload_sizes  # noqa: E402

DEFAULT_POLICIES = ("resident", "block", "leaf", "disk")
REFERENCE_POLICY = "resident"
SEED = 0
RSS_SAMPLE_S = 0.01
MB = 1 << 20
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
MODEL_FLAGS = ("layers", "heads", "head_dim", "ffn_dim", "text_dim", "text_tokens", "frames", "height", "width")


# ----- the model and its inputs (the same in every child: seeded, built on the CPU in float32) ---------------------


def model_config(args: argparse.Namespace) -> dict[str, Any]:
    """A Wan 2.1-shaped transformer config at the benchmark's size."""
    return {
        "patch_size": (1, 2, 2),
        "num_attention_heads": args.heads,
        "attention_head_dim": args.head_dim,
        "in_channels": 16,
        "out_channels": 16,
        "text_dim": args.text_dim,
        "freq_dim": 256,
        "ffn_dim": args.ffn_dim,
        "num_layers": args.layers,
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "rope_max_seq_len": 1024,
    }


def build_model(args: argparse.Namespace, dtype: torch.dtype) -> torch.nn.Module:
    """The transformer with seeded random weights on the CPU, cast to ``dtype``, in eval mode."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(SEED)
    model = WanTransformer3DModel(**model_config(args)).eval().requires_grad_(False)
    return model.to(dtype)


def make_inputs(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Seeded latents ``[1, 16, F, H, W]``, a timestep and a text context, drawn on the CPU and moved."""
    generator = torch.Generator().manual_seed(SEED + 1)
    latents = torch.randn(1, 16, args.frames, args.height, args.width, generator=generator)
    context = torch.randn(1, args.text_tokens, args.text_dim, generator=generator)
    return {
        "hidden_states": latents.to(device, dtype),
        "timestep": torch.tensor([500], device=device),
        "encoder_hidden_states": context.to(device, dtype),
    }


# ----- one policy, in a child process ----------------------------------------------------------------------------


class PeakRss:
    """The process's peak RSS over a ``with`` block, in ``peak`` (bytes); ``method`` says how it was measured.

    On Linux the kernel's high-water mark is reset on entry (``/proc/self/clear_refs``) and read on exit
    (``VmHWM``): exact, and free. Elsewhere a thread samples the RSS, which is coarser and takes the GIL from
    the forwards now and then (it slowed hook-heavy ``leaf`` forwards of a tiny model many times over).
    """

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0
        self.method = "VmHWM" if self._reset_high_water_mark() else "sampled"
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _reset_high_water_mark() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return False
        return PeakRss._high_water_mark() is not None

    @staticmethod
    def _high_water_mark() -> int | None:
        try:
            status = Path("/proc/self/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) * 1024 if match else None

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(RSS_SAMPLE_S)

    def __enter__(self) -> PeakRss:
        self.peak = self.process.memory_info().rss
        if self.method == "VmHWM":
            self._reset_high_water_mark()
        else:
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.method == "VmHWM":
            self.peak = max(self.peak, self._high_water_mark() or 0)
        else:
            self._done.set()
            self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def _max_rss_bytes() -> int:
    """The process's peak RSS so far (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_policy(args: argparse.Namespace, policy: str, work: Path) -> dict[str, Any]:
    """Apply ``policy``, run one warm-up and ``args.repeats`` timed forwards, and measure; the figures as a dict."""
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    cpu = torch.device("cpu")
    from diffusers import WanTransformer3DModel  # noqa: F401  (imported before the baseline RSS is read)

    rss_base = psutil.Process().memory_info().rss  # torch and diffusers' Wan module imported, no model yet
    model = build_model(args, dtype)
    sizes = offload_sizes(model)
    process = psutil.Process()
    rss_built = process.memory_info().rss
    disk_dir = work / "disk" if policy == "disk" else None
    config = OffloadConfig(policy, num_blocks_per_group=args.blocks_per_group, disk_dir=disk_dir)
    applied = apply_offload(model, config, onload_device=device, offload_device=cpu)
    if policy == "resident":
        model.to(device)
    rss_applied = process.memory_info().rss
    inputs = make_inputs(args, device, dtype)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        device_allocated_at_rest = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    applied.reset_peak()

    def forward() -> torch.Tensor:
        if policy == "model":  # the ModelManager's moves when the model is evicted between uses
            model.to(device)
        output = model(**inputs, return_dict=False)[0]
        if policy == "model":
            model.to(cpu)
        return output

    seconds: list[float] = []
    warmup_s = 0.0
    with torch.no_grad(), PeakRss() as peak_rss:
        for index in range(args.repeats + 1):
            _synchronize(device)
            started = time.perf_counter()
            output = forward()
            _synchronize(device)
            elapsed = time.perf_counter() - started
            if index == 0:
                warmup_s = elapsed
            else:
                seconds.append(elapsed)
    output = output.float().cpu()
    reference_path = work / f"{REFERENCE_POLICY}_output.pt"
    if policy == REFERENCE_POLICY and not reference_path.exists():  # later rounds check against the first
        torch.save(output, reference_path)
    reference = torch.load(reference_path, weights_only=True)
    figures: dict[str, Any] = {
        "policy": policy,
        "seconds": seconds,
        "median_s": statistics.median(seconds),
        "warmup_s": warmup_s,
        "weights_bytes": applied.total_bytes,
        "peak_resident_bytes": applied.peak_resident_bytes,
        "groups": len(applied.groups),
        "largest_group_bytes": applied.largest_group_bytes,
        "use_stream": applied.use_stream,
        "sizes": {
            "largest_block_bytes": sizes.largest_block_bytes,
            "non_block_bytes": sizes.non_block_bytes,
            "largest_leaf_bytes": sizes.largest_leaf_bytes,
        },
        "rss_before_build": rss_base,
        "rss_after_build": rss_built,
        "rss_after_apply": rss_applied,
        "rss_peak_forwards": peak_rss.peak,
        "rss_peak_method": peak_rss.method,
        "ru_maxrss": _max_rss_bytes(),
        "output_shape": list(output.shape),
        "output_max_abs": output.abs().max().item(),
        "max_abs_diff": (output - reference).abs().max().item(),
        "disk_bytes": _folder_bytes(applied.disk_path) if applied.disk_path is not None else None,
    }
    if device.type == "cuda":
        figures["cuda_allocated_at_rest"] = device_allocated_at_rest
        figures["cuda_max_allocated"] = torch.cuda.max_memory_allocated(device)
    return figures


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def run_child(args: argparse.Namespace, policy: str, work: Path) -> dict[str, Any]:
    """Run ``policy`` in a fresh Python process; its figures, or ``{"error": ...}`` if it failed."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", policy, str(work)]
    for name in MODEL_FLAGS:
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    command += ["--device", args.device, "--dtype", args.dtype, "--repeats", str(args.repeats)]
    command += ["--blocks-per-group", str(args.blocks_per_group)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode == 0:
        for line in reversed(completed.stdout.strip().splitlines()):
            if line.startswith("{"):
                return json.loads(line)
    tail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-15:])
    return {"policy": policy, "error": f"exit {completed.returncode}: {tail}"}


PEAK_KEYS = (
    "peak_resident_bytes",
    "rss_peak_forwards",
    "ru_maxrss",
    "max_abs_diff",
    "cuda_allocated_at_rest",
    "cuda_max_allocated",
)


def run_rounds(args: argparse.Namespace, work: Path) -> dict[str, dict[str, Any]]:
    """Every policy once per round, in order, each in a fresh process, so drift in the machine's load hits all
    alike; the merged figures per policy (``resident`` first: its first output is the reference)."""
    runs: dict[str, list[dict[str, Any]]] = {policy: [] for policy in args.policies}
    for round_index in range(args.rounds):
        for policy in args.policies:
            reference = runs[REFERENCE_POLICY]
            if policy != REFERENCE_POLICY and (not reference or "error" in reference[0]):
                runs[policy].append({"policy": policy, "error": "skipped: the resident reference run failed"})
                continue
            print(f"round {round_index + 1}/{args.rounds}: {policy} ...", file=sys.stderr, flush=True)
            runs[policy].append(run_child(args, policy, work))
    return {policy: merge_runs(policy, figures) for policy, figures in runs.items()}


def merge_runs(policy: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One policy's rounds as one set of figures: every timed forward, the highest of each peak, the rest from the
    first round; each round's own figures under ``runs``."""
    failed = next((run for run in runs if "error" in run), None)
    if failed is not None:
        return {"policy": policy, "error": failed["error"], "runs": runs}
    seconds = [value for run in runs for value in run["seconds"]]
    merged = dict(runs[0])
    merged |= {
        "seconds": seconds,
        "median_s": statistics.median(seconds),
        "round_medians_s": [run["median_s"] for run in runs],
        "warmup_s": [run["warmup_s"] for run in runs],
    }
    for key in PEAK_KEYS:
        if key in merged:
            merged[key] = max(run[key] for run in runs)
    merged["runs"] = runs
    return merged


# ----- report ----------------------------------------------------------------------------------------------------


def _seconds(value: float) -> str:
    return f"{value:.3f} s" if value >= 0.1 else f"{value * 1e3:.2f} ms"


def summary_text(results: dict[str, Any]) -> str:
    """The printed report: one row per policy, time relative to ``resident``."""
    settings, machine, policies = results["settings"], results["machine"], results["policies"]
    on_cuda = machine["device"].startswith("cuda")
    device_name = machine.get("cuda_device_name", f"{machine['cpus']} CPUs, {machine['torch_threads']} torch threads")
    reference = policies.get(REFERENCE_POLICY, {})
    weights = next((f["weights_bytes"] for f in policies.values() if "error" not in f), None)
    weights_text = f"{weights / MB:,.1f} MB" if weights is not None else "? MB"
    header = (
        f"Offload benchmark: WanTransformer3DModel, {settings['layers']} layers, {settings['heads']}x"
        f"{settings['head_dim']} heads, ffn {settings['ffn_dim']}, {weights_text} of {settings['dtype']} "
        f"weights;\nlatents {settings['frames']}x{settings['height']}x{settings['width']} "
        f"({settings['tokens']} tokens), "
        f"text {settings['text_tokens']}x{settings['text_dim']}; on {machine['device']} ({device_name}), "
        f"torch {machine['torch']}; median of {settings['rounds']} rounds x {settings['repeats']} forwards "
        f"(each after one warm-up in a fresh process); "
        f"{settings['blocks_per_group']} block(s) per group"
    )
    memory_header = "CUDA max allocated" if on_cuda else "peak RSS in forwards"
    headers = (
        "policy",
        "s/forward",
        "fastest-slowest",
        "x resident",
        "peak resident",
        "% weights",
        memory_header,
        "max |diff|",
        "groups",
    )
    rows = []
    reference_s = reference.get("median_s")
    for name, figures in policies.items():
        if "error" in figures:
            rows.append([name, "failed", "", "", "", "", "", "", ""])
            continue
        if on_cuda:
            memory = f"{figures['cuda_max_allocated'] / MB:,.0f} MB"
        else:
            rss, base = figures["rss_peak_forwards"], figures["rss_before_build"]
            memory = f"{rss / MB:,.0f} MB (+{(rss - base) / MB:,.0f})"
        rows.append(
            [
                name + (" (stream)" if figures["use_stream"] else ""),
                _seconds(figures["median_s"]),
                f"{_seconds(min(figures['seconds']))} - {_seconds(max(figures['seconds']))}",
                f"{figures['median_s'] / reference_s:.2f}x" if reference_s else "n/a",
                f"{figures['peak_resident_bytes'] / MB:,.1f} MB",
                f"{figures['peak_resident_bytes'] / figures['weights_bytes'] * 100:.0f}%",
                memory,
                f"{figures['max_abs_diff']:.2e}",
                str(figures["groups"]),
            ]
        )
    notes = (
        "peak resident = the most weight bytes the policy's hooks kept on the device during the forwards "
        "(AppliedOffload accounting);\n"
        + (
            "CUDA max allocated = torch.cuda.max_memory_allocated() over the forwards (weights + activations)."
            if on_cuda
            else "peak RSS in forwards = the process's peak RSS during the forwards (Linux VmHWM, reset before them; "
            "else sampled);\n(+N) = above the RSS before the model was built (weights + activations + allocator slack; "
            "the model was built\nwhole in RAM before the policy was applied)."
        )
    )
    failures = [f"{name} failed: {figures['error']}" for name, figures in policies.items() if "error" in figures]
    load = machine.get("load_average") or [None, None]
    if load[0] is not None:
        notes += (
            f"\nload average (1 min) before / after: {load[0][0]:.2f} / {load[1][0]:.2f} on {machine['cpus']} CPUs."
        )
    return "\n\n".join([header, format_table(headers, rows), notes, *failures])


def plot(path: Path, results: dict[str, Any]) -> Path:
    """Two panels over the policy index: seconds per forward, and peak resident MB against the weights' MB."""
    measured = [(name, f) for name, f in results["policies"].items() if "error" not in f]
    if not measured:
        raise ValueError("no policy ran: nothing to plot")
    index = {name: position + 1 for position, (name, _) in enumerate(measured)}
    x_label = "policy: " + ", ".join(f"{index[name]} {name}" for name, _ in measured)
    last = len(measured)
    time_chart = draw_line_chart(
        "Seconds per transformer forward",
        x_label,
        "seconds",
        {
            "median": [(index[name], f["median_s"]) for name, f in measured],
            "fastest": [(index[name], min(f["seconds"])) for name, f in measured],
            "slowest": [(index[name], max(f["seconds"])) for name, f in measured],
        },
        log_x=False,
        styles={
            "median": Style("#1f77b4"),
            "fastest": Style("#9ecae1", dashed=True),
            "slowest": Style("#08519c", dashed=True),
        },
    )
    weights_mb = measured[0][1]["weights_bytes"] / MB
    on_cuda = results["machine"]["device"].startswith("cuda")
    memory_name = "CUDA max allocated" if on_cuda else "peak RSS in forwards - RSS before the model"

    def memory_mb(figures: dict[str, Any]) -> float:
        if on_cuda:
            return figures["cuda_max_allocated"] / MB
        return (figures["rss_peak_forwards"] - figures["rss_before_build"]) / MB

    memory_chart = draw_line_chart(
        "Peak memory: weights on the device and in all",
        x_label,
        "MB",
        {
            "peak resident (hook accounting)": [(index[name], f["peak_resident_bytes"] / MB) for name, f in measured],
            memory_name: [(index[name], memory_mb(f)) for name, f in measured],
            "weights": [(1, weights_mb), (max(last, 2), weights_mb)],
        },
        log_x=False,
        styles={
            "peak resident (hook accounting)": Style("#d62728"),
            memory_name: Style("#ff7f0e"),
            "weights": Style("#2ca02c", dashed=True),
        },
    )
    return side_by_side(path, [time_chart, memory_chart])


# ----- command line ----------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_argument_group("model and inputs (defaults: ~190 MB of float32 weights, 1024 latent tokens)")
    size.add_argument("--layers", type=int, default=10, help="transformer blocks")
    size.add_argument("--heads", type=int, default=8, help="attention heads")
    size.add_argument("--head-dim", type=int, default=64, help="channels per head (hidden size = heads x head-dim)")
    size.add_argument("--ffn-dim", type=int, default=2048, help="feed-forward hidden size")
    size.add_argument("--text-dim", type=int, default=4096, help="text context channels (Wan's T5: 4096)")
    size.add_argument("--text-tokens", type=int, default=128, help="text context length")
    size.add_argument("--frames", type=int, default=4, help="latent frames")
    size.add_argument("--height", type=int, default=32, help="latent height (even)")
    size.add_argument("--width", type=int, default=32, help="latent width (even)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if available")
    parser.add_argument(
        "--dtype", choices=("auto", *DTYPES), default="auto", help="auto: bfloat16 on cuda, float32 on cpu"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards per process, after one warm-up")
    parser.add_argument(
        "--rounds", type=int, default=3, help="processes per policy, run round-robin (medians over all rounds)"
    )
    parser.add_argument(
        "--policies",
        nargs="+",
        choices=POLICIES,
        default=list(DEFAULT_POLICIES),
        help="policies to run (resident always runs first, as the reference); 'model' equals resident on a CPU",
    )
    parser.add_argument("--blocks-per-group", type=int, default=1, help="blocks per group for block and disk")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "offload.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "bench" / "results" / "offload.png")
    parser.add_argument("--child", nargs=2, metavar=("POLICY", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("layers", "heads", "head_dim", "ffn_dim", "text_dim", "text_tokens", "frames", "height", "width"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if min(args.repeats, args.rounds, args.blocks_per_group) < 1:
        parser.error("--repeats, --rounds and --blocks-per-group must be at least 1")
    if args.height % 2 or args.width % 2:
        parser.error("--height and --width must be even (the transformer's 2x2 patches)")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    elif args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    if args.dtype == "auto":
        args.dtype = "bfloat16" if args.device == "cuda" else "float32"
    args.policies = [REFERENCE_POLICY, *dict.fromkeys(p for p in args.policies if p != REFERENCE_POLICY)]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        policy, work = args.child
        print(json.dumps(run_policy(args, policy, Path(work))))
        return 0
    started = time.perf_counter()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="reelgraph-offload-bench-") as temp:
        policies = run_rounds(args, Path(temp))
    settings = {name: getattr(args, name) for name in MODEL_FLAGS}
    settings |= {
        "tokens": args.frames * (args.height // 2) * (args.width // 2),
        "device": args.device,
        "dtype": args.dtype,
        "repeats": args.repeats,
        "rounds": args.rounds,
        "blocks_per_group": args.blocks_per_group,
        "policies": args.policies,
        "seed": SEED,
        "model_config": model_config(args),
    }
    results = {
        "benchmark": "offload policies: WanTransformer3DModel forward",
        "settings": settings,
        "machine": torch_machine_info(torch.device(args.device)) | {"load_average": [load_before, load_average()]},
        "policies": policies,
        "total_s": time.perf_counter() - started,
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    print(summary_text(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    written = [str(args.out)]
    if any("error" not in figures for figures in policies.values()):
        written.append(str(plot(args.plot, results)))
    print(f"\nwrote {' and '.join(written)} in {results['total_s']:.0f} s")
    return 1 if any("error" in figures for figures in policies.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
