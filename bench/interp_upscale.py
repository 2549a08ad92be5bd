"""Frame interpolation and upscaling benchmark: frames per second and peak memory for 2x interpolation and 4x
upscaling of a clip (default 120 frames at 256x256 on the CPU), through the same loaders and runners the nodes use.

Models are real-size with random weights, written as files in the releases' layouts and loaded by our loaders:
RIFE 4.6 (IFNet, block widths 192/128/96/64) and the weights-free classical method for interpolation; SPAN (48
features, as 4x-ClearRealityV1) and Real-ESRGAN Compact (64 features, 32 convolutions, as realesr-general-x4v3) for
4x upscaling. Random weights compute exactly what trained ones do, so the timings hold for the releases.

The ``finish`` runs take a clip from an mp4 file through RIFE 4.6 (``--finish-multiplier``) and Compact 4x into an
mp4, twice: in memory (decode it all, interpolate it all, upscale it all, encode) and streamed (the nodes' ``output:
streamed``: a window of frames at a time from decoder to encoder), to show what streaming saves in peak memory and
costs in time (``--finish-frames``, ``--finish-size``).

Peak memory is the process's resident-set high-water mark over each run (``VmHWM``, reset before it) and, on CUDA,
``torch.cuda.max_memory_allocated``. Each run is timed once after a one-batch warm-up; the chart plots frames done
against seconds for every run.

    python bench/interp_upscale.py                             # 120 frames, 256x256, CPU
    python bench/interp_upscale.py --threads 1 --frames 24     # a quicker look
    python bench/interp_upscale.py --device cuda --size 1280x720
    python bench/interp_upscale.py --only finish --finish-frames 60 --finish-size 128x128
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from bench.offload import PeakRss
from bench.plot import draw_line_chart
from bench.report import format_table, load_average, torch_machine_info
from models.devices import DeviceProbe
from models.interpolation.classical import FlowBlendInterpolator
from models.interpolation.loading import load_frame_interpolator
from models.interpolation.rife_layout import residual_layout
from models.interpolation.rife_net import IFNet
from models.interpolation.run import interpolate_clip, interpolate_stream
from models.interpolation.timing import multiplier_timeline
from models.memory import ModelManager
from models.memory_types import MemoryConfig
from models.upscale.model import load_upscale_model
from models.upscale.spandrel_import import import_spandrel
from models.upscale.tiling import TileOptions, upscale_batches
from nodes.media.decode import load_video_frames
from nodes.media.encode import encode_video, tensor_batches
from nodes.media.encode_settings import EncodeSettings
from nodes.media.video import VideoFromFile, joined_frames

RESULTS = Path(__file__).parent / "results"
FPS = 16.0
RIFE46_WIDTHS = (192, 128, 96, 64)
RIFE46_INPUTS = (7, 12)  # the first block sees both frames and t; the others also the flow and mask so far
RIFE_DEPTH = 8
RIFE_OUT = 6  # four flow channels, the mask and one v4.6 leaves unused
ProgressPoints = list[tuple[float, float]]


def moving_clip(frames: int, height: int, width: int) -> torch.Tensor:
    """``IMAGE [frames, H, W, 3]``: a gradient background with a bright square crossing it (content that moves)."""
    ys = torch.linspace(0.0, 1.0, height).view(height, 1, 1)
    xs = torch.linspace(0.0, 1.0, width).view(1, width, 1)
    background = torch.cat(
        [ys.expand(height, width, 1), xs.expand(height, width, 1), (ys + xs).expand(-1, -1, 1) / 2], 2
    )
    clip = background.expand(frames, height, width, 3).clone()
    side = max(4, min(height, width) // 6)
    for index in range(frames):
        left = int((width - side) * index / max(frames - 1, 1))
        top = (height - side) // 2
        clip[index, top : top + side, left : left + side] = torch.tensor([1.0, 0.9, 0.2])
    return clip


def write_models(folder: Path) -> dict[str, Path]:
    """Real-size random-weight model files in the releases' layouts; name -> path."""
    torch.manual_seed(0)
    layout = residual_layout(RIFE46_WIDTHS, RIFE46_INPUTS, RIFE_OUT, depth=RIFE_DEPTH)
    paths = {"rife46": folder / "rife46.pth"}
    torch.save(IFNet(layout).state_dict(), paths["rife46"])
    import_spandrel()
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.SPAN import SPAN

    upscalers = {
        "span": ("4x-ClearRealityV1.pth", SPAN(num_in_ch=3, num_out_ch=3, feature_channels=48, upscale=4)),
        "compact": (
            "realesr-general-x4v3.pth",
            Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4),
        ),
    }
    for name, (file_name, module) in upscalers.items():
        paths[name] = folder / file_name
        torch.save(module.state_dict(), paths[name])
    return paths


class Run:
    """One timed run: wall seconds, peak memory and frames done against time."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.points: ProgressPoints = [(0.0, 0.0)]
        self.seconds = 0.0
        self.peak_rss = 0
        self.peak_cuda: int | None = None
        self._start = 0.0

    def progress(self, frames_done: float) -> None:
        self.points.append((time.perf_counter() - self._start, frames_done))

    def measure(self, work: Callable[[], None]) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        with PeakRss() as rss:
            self._start = time.perf_counter()
            work()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds = time.perf_counter() - self._start
        self.peak_rss = rss.peak
        if self.device.type == "cuda":
            self.peak_cuda = torch.cuda.max_memory_allocated(self.device)


def interpolation_run(manager: ModelManager, interpolator: Any, clip: torch.Tensor, batch: int) -> Run:
    timeline = multiplier_timeline(clip.shape[0], FPS, 2)
    interpolate_clip(manager, interpolator, clip[:2], multiplier_timeline(2, FPS, 2), batch_size=1)  # warm-up
    run = Run(manager.compute_device)
    total = timeline.made_frames

    def work() -> None:
        interpolate_clip(
            manager, interpolator, clip, timeline, batch_size=batch, on_progress=lambda done, _: run.progress(done)
        )

    run.measure(work)
    run.points[-1] = (run.seconds, float(total))
    return run


def upscale_run(manager: ModelManager, model: Any, clip: torch.Tensor, options: TileOptions) -> Run:
    for _ in upscale_batches(manager, model, [clip[:1]], options):  # warm-up
        pass
    run = Run(manager.compute_device)

    def frames() -> Iterator[torch.Tensor]:
        yield from clip.split(options.batch_size)

    def work() -> None:
        for _ in upscale_batches(manager, model, frames(), options, on_batch=run.progress):
            pass

    run.measure(work)
    return run


def finish_run(
    manager: ModelManager, interpolator: Any, model: Any, source: Path, multiplier: int, streamed: bool, out: Path
) -> Run:
    """``source`` interpolated ``multiplier`` x and upscaled into the mp4 ``out``, in memory or streamed."""
    video = VideoFromFile.probed(source)
    timeline = multiplier_timeline(video.get_frame_count(), float(video.get_frame_rate()), multiplier)
    settings = EncodeSettings(container="mp4", codec="h264", frame_rate=video.get_frame_rate() * multiplier)
    options = TileOptions(batch_size=4)
    run = Run(manager.compute_device)
    total = len(timeline.frames)

    def streamed_frames() -> Iterator[torch.Tensor]:
        made = interpolate_stream(manager, interpolator, video.frame_batches(16)(), timeline, batch_size=4)
        return upscale_batches(manager, model, made, options)

    def work() -> None:
        if streamed:
            encode_video(out, streamed_frames, settings, on_frame=run.progress)
            return
        clip = load_video_frames(source)
        interpolated = interpolate_clip(manager, interpolator, clip, timeline, batch_size=4)
        upscaled = joined_frames(upscale_batches(manager, model, [interpolated], options), total)
        encode_video(out, tensor_batches(upscaled, 16), settings, on_frame=run.progress)

    run.measure(work)
    return run


def summarize(name: str, kind: str, frames_made: int, run: Run) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "frames_made": frames_made,
        "seconds": run.seconds,
        "frames_per_s": frames_made / run.seconds if run.seconds else math.inf,
        "peak_rss_bytes": run.peak_rss,
        "peak_cuda_bytes": run.peak_cuda,
        "progress": run.points,
    }


def finish_runs(
    manager: ModelManager, paths: dict[str, Path], folder: Path, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """The finish pair: the same file through RIFE and Compact into an mp4, in memory then streamed."""
    width, height = (int(side) for side in args.finish_size.lower().split("x"))
    source = folder / "source.mp4"
    clip = moving_clip(args.finish_frames, height, width)
    encode_video(source, tensor_batches(clip), EncodeSettings(container="mp4", codec="h264", frame_rate=FPS))
    interpolator = load_frame_interpolator(manager, paths["rife46"])
    model = load_upscale_model(manager, paths["compact"])
    made = (args.finish_frames - 1) * args.finish_multiplier + 1
    warm = clip[:2]
    interpolate_clip(manager, interpolator, warm, multiplier_timeline(2, FPS, 2))
    for _ in upscale_batches(manager, model, [warm[:1]], TileOptions()):
        pass
    runs = []
    for streamed in (False, True):
        mode = "streamed" if streamed else "in memory"
        print(f"finishing {args.finish_frames} frames at {args.finish_size} ({mode}) ...", flush=True)
        out = folder / f"finished_{'streamed' if streamed else 'memory'}.mp4"
        run = finish_run(manager, interpolator, model, source, args.finish_multiplier, streamed, out)
        runs.append(summarize(mode, f"finish {args.finish_multiplier}x + 4x", made, run))
    manager.free()
    return runs


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--size", default="256x256", help="WIDTHxHEIGHT of the clip")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--batch", type=int, default=4, help="frame pairs / frames per device batch")
    parser.add_argument("--tile", type=int, default=0, help="upscale tile size (0: from free memory)")
    parser.add_argument("--only", default="classical,rife46,span,compact,finish", help="comma-separated runs")
    parser.add_argument("--finish-frames", type=int, default=60, help="frames of the finish runs' source file")
    parser.add_argument("--finish-size", default="128x128", help="WIDTHxHEIGHT of the finish runs' source")
    parser.add_argument("--finish-multiplier", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS / "interp_upscale.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(side) for side in args.size.lower().split("x"))
    device = torch.device(args.device)
    wanted = set(args.only.split(","))
    clip = moving_clip(args.frames, height, width)
    manager = ModelManager(MemoryConfig(mode="cpu") if device.type == "cpu" else MemoryConfig(), DeviceProbe())
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        paths = write_models(Path(folder))
        made = multiplier_timeline(args.frames, FPS, 2).made_frames
        interpolators = {
            "classical": lambda: FlowBlendInterpolator(),
            "rife46": lambda: load_frame_interpolator(manager, paths["rife46"]),
        }
        for name, make in interpolators.items():
            if name in wanted:
                print(f"interpolating 2x with {name} ...", flush=True)
                runs.append(
                    summarize(name, "interpolate 2x", made, interpolation_run(manager, make(), clip, args.batch))
                )
        options = TileOptions(tile_size=args.tile, batch_size=args.batch)
        for name in ("span", "compact"):
            if name in wanted:
                print(f"upscaling 4x with {name} ...", flush=True)
                model = load_upscale_model(manager, paths[name])
                runs.append(summarize(name, "upscale 4x", args.frames, upscale_run(manager, model, clip, options)))
                manager.free()
        if "finish" in wanted:
            runs.extend(finish_runs(manager, paths, Path(folder), args))
    results = {
        "benchmark": "interp_upscale",
        "settings": {
            **{key: str(value) for key, value in vars(args).items()},
            "torch_threads": torch.get_num_threads(),
        },
        "runs": runs,
        "machine": torch_machine_info(device),
        "load_average": load_average(),
        "total_s": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    chart = draw_line_chart(
        f"{args.frames} frames at {width}x{height} on {device.type}",
        "seconds",
        "frames made",
        {
            f"{run['kind']}: {run['name']}": run["progress"][1:] or [(run["seconds"], run["frames_made"])]
            for run in runs
        },
        log_x=False,
    )
    chart_path = args.out.with_suffix(".png")
    chart.save(chart_path)
    rows = [
        (
            run["kind"],
            run["name"],
            str(run["frames_made"]),
            f"{run['seconds']:.1f} s",
            f"{run['frames_per_s']:.2f}",
            f"{run['peak_rss_bytes'] / 2**20:.0f} MiB",
            "-" if run["peak_cuda_bytes"] is None else f"{run['peak_cuda_bytes'] / 2**20:.0f} MiB",
        )
        for run in runs
    ]
    print(format_table(("work", "model", "frames", "time", "frames/s", "peak RSS", "peak CUDA"), rows))
    print(f"\nwrote {args.out} and {chart_path} in {results['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
