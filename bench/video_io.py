"""Video I/O benchmark: decode and encode frames/s through our nodes against raw PyAV, and peak RSS while saving.

In one process, alternating per repeat, the same h264 source is decoded into an IMAGE tensor (float32 0..1) by
``LoadVideoFrames`` and by a plain PyAV loop, and the same frames are encoded to an h264 mp4 by ``SaveVideoAs``
and by a plain PyAV loop with the same encoder options. Medians give the overhead of our nodes (target: under
10%). A child process then saves a long clip (default 1000 frames) with ``SaveVideoAs`` while its resident
memory is sampled; the peak is compared with the frames' own size (target: under 1.5x).

    python bench/video_io.py --frames 240 --size 512 --repeats 5 --memory-frames 1000
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402

from bench.plot import Style, draw_line_chart, side_by_side  # noqa: E402
from graph.context import InterruptFlag, NodeContext, node_context  # noqa: E402
from nodes.folders import FOLDERS_SERVICE, Folders  # noqa: E402
from nodes.video import LoadVideoFrames  # noqa: E402
from nodes.video_save import SaveVideoAs  # noqa: E402

FPS = 24
CRF = 19
TARGETS = {"overhead": 0.10, "peak_rss_ratio": 1.5}
MEMORY_SAMPLE_S = 0.02


# ----- content and the two ways of doing each job ---------------------------------------------------------------


def synthetic_frames(count: int, size: int, start: int = 0) -> np.ndarray:
    """``count`` moving-gradient RGB frames ``[F, size, size, 3]`` uint8 with a little noise (so codecs work)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    noise = np.random.default_rng(start).integers(0, 12, (count, size, size, 3), dtype=np.uint8)
    frames = np.empty((count, size, size, 3), dtype=np.uint8)
    for i in range(count):
        phase = (start + i) * 0.08
        frames[i, ..., 0] = 120 + 100 * np.sin(2 * np.pi * xs + phase)
        frames[i, ..., 1] = 120 + 100 * np.cos(2 * np.pi * ys + phase)
        frames[i, ..., 2] = 40 + 160 * (xs * ys)
    return frames + noise


def write_source(path: Path, count: int, size: int) -> Path:
    """The h264 source clip, written with raw PyAV in chunks."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "16", "preset": "veryfast"}
        for start in range(0, count, 60):
            for pixels in synthetic_frames(min(60, count - start), size, start):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return path


def raw_decode(path: Path) -> torch.Tensor:
    """What a script would write with PyAV alone: decode every frame to RGB, one float IMAGE tensor."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    return torch.from_numpy(np.stack(frames)).to(torch.float32).div_(255.0)


def raw_encode(images: torch.Tensor, path: Path) -> None:
    """PyAV alone doing the same job as our node: h264 at the same crf and preset, frames converted to 8-bit one
    by one and to BT.709 yuv420p explicitly (PyAV's implicit conversion in ``encode`` is slower and BT.601)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.height, stream.width = int(images.shape[1]), int(images.shape[2])
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(CRF), "preset": "medium"}
        for frame in images:
            pixels = frame.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
            rgb = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            yuv = rgb.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
            container.mux(stream.encode(yuv))
        container.mux(stream.encode())


def _run_node(folders: Folders, node_class: type, **inputs: Any) -> Any:
    context = NodeContext(
        node_id="1",
        display_node_id="1",
        class_type=node_class.__name__,
        prompt_id="bench",
        interrupt=InterruptFlag(),
        services={FOLDERS_SERVICE: folders},
    )
    node = node_class.bound_to(folders) if hasattr(node_class, "bound_to") else node_class
    with node_context(context):
        return getattr(node(), node.FUNCTION)(**inputs)


def ours_decode(folders: Folders, name: str) -> torch.Tensor:
    images, _count, _audio, _fps = _run_node(folders, LoadVideoFrames, video=name)
    return images


def ours_encode(folders: Folders, images: torch.Tensor) -> Path:
    result = _run_node(
        folders,
        SaveVideoAs,
        images=images,
        filename_prefix="bench/ours",
        format="mp4 (h264)",
        fps=float(FPS),
        crf=CRF,
        pixel_format="auto",
        save_output=True,
    )
    entry = result["ui"]["images"][0]
    return folders.output_dir / entry["subfolder"] / entry["filename"]


# ----- timing ----------------------------------------------------------------------------------------------------


def timed(job: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = job()
    return time.perf_counter() - start, result


def measure_speed(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Frames/s of each job per repeat, ours and raw alternating so drift hits both alike."""
    folders = Folders.under(work)
    for folder in (folders.input_dir, folders.output_dir, folders.temp_dir):
        folder.mkdir(parents=True, exist_ok=True)
    write_source(folders.input_dir / "source.mp4", args.frames, args.size)
    images = raw_decode(folders.input_dir / "source.mp4")
    ours_decode(folders, "source.mp4")  # warm-up: imports, codec tables
    source = folders.input_dir / "source.mp4"
    jobs: dict[str, Callable[[int], Any]] = {
        "decode_ours": lambda _repeat: ours_decode(folders, source.name),
        "decode_raw": lambda _repeat: raw_decode(source),
        "encode_ours": lambda _repeat: ours_encode(folders, images),
        "encode_raw": lambda repeat: raw_encode(images, work / f"raw_{repeat}.mp4"),
    }
    seconds: dict[str, list[float]] = {name: [] for name in jobs}
    for repeat in range(args.repeats):
        order = ("ours", "raw") if repeat % 2 == 0 else ("raw", "ours")
        for job in ("decode", "encode"):
            for who in order:
                elapsed, result = timed(functools.partial(jobs[f"{job}_{who}"], repeat))
                if job == "decode" and result.shape != images.shape:
                    raise RuntimeError(f"{who} decoded {tuple(result.shape)}, expected {tuple(images.shape)}")
                del result  # the next job must not run with this one's frames still in memory
                seconds[f"{job}_{who}"].append(elapsed)
    fps = {name: [args.frames / s for s in values] for name, values in seconds.items()}
    medians = {name: statistics.median(values) for name, values in fps.items()}
    overhead = {
        job: medians[f"{job}_raw"] / medians[f"{job}_ours"] - 1.0 for job in ("decode", "encode")
    }  # extra time per frame, relative to raw
    return {"fps": fps, "median_fps": medians, "overhead": overhead}


# ----- memory while saving a long clip (in a child, so the parent's allocations do not count) --------------------


def memory_child(frames: int, size: int, work: Path) -> dict[str, Any]:
    """Make the frames, then save them with ``SaveVideoAs`` while a thread samples RSS."""
    folders = Folders.under(work)
    for folder in (folders.input_dir, folders.output_dir, folders.temp_dir):
        folder.mkdir(parents=True, exist_ok=True)
    images = torch.empty((frames, size, size, 3), dtype=torch.float32)
    for start in range(0, frames, 50):
        count = min(50, frames - start)
        images[start : start + count] = torch.from_numpy(synthetic_frames(count, size, start)).float().div_(255.0)
    process = psutil.Process()
    before = process.memory_info().rss
    samples: list[tuple[float, int]] = []
    done = threading.Event()
    began = time.perf_counter()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.perf_counter() - began, process.memory_info().rss))
            time.sleep(MEMORY_SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    path = ours_encode(folders, images)
    done.set()
    sampler.join()
    with av.open(str(path)) as container:
        decoded = container.streams.video[0].frames
    frames_bytes = images.numel() * images.element_size()
    peak = max(max(rss for _, rss in samples), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {
        "frames": frames,
        "size": size,
        "frames_bytes": frames_bytes,
        "rss_before_save": before,
        "peak_rss": peak,
        "peak_rss_ratio": peak / frames_bytes,
        "save_seconds": samples[-1][0] if samples else 0.0,
        "frames_in_file": decoded,
        "rss_samples": [(round(t, 3), rss) for t, rss in samples],
    }


def measure_memory(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--memory-child", str(args.memory_frames), str(args.size), str(work)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"memory run failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# ----- report ----------------------------------------------------------------------------------------------------


def summary_text(figures: dict[str, Any]) -> str:
    speed, memory, settings = figures["speed"], figures["memory"], figures["settings"]
    lines = [f"{settings['frames']} frames at {settings['size']}x{settings['size']}, medians of {settings['repeats']}:"]
    for job in ("decode", "encode"):
        ours, raw = speed["median_fps"][f"{job}_ours"], speed["median_fps"][f"{job}_raw"]
        overhead = speed["overhead"][job]
        verdict = "ok" if overhead < TARGETS["overhead"] else "OVER TARGET"
        lines.append(
            f"  {job}: ours {ours:7.1f} fps, raw PyAV {raw:7.1f} fps, overhead {overhead * 100:+5.1f}% "
            f"(target < {TARGETS['overhead'] * 100:.0f}%) {verdict}"
        )
    ratio = memory["peak_rss_ratio"]
    verdict = "ok" if ratio < TARGETS["peak_rss_ratio"] else "OVER TARGET"
    lines.append(
        f"  saving {memory['frames']} frames ({memory['frames_bytes'] / 2**30:.2f} GiB as float32): peak RSS "
        f"{memory['peak_rss'] / 2**30:.2f} GiB = {ratio:.2f}x the frames (target < {TARGETS['peak_rss_ratio']}x) "
        f"{verdict}; {memory['frames_in_file']} frames in the file, {memory['save_seconds']:.1f} s"
    )
    return "\n".join(lines)


def plot(path: Path, figures: dict[str, Any]) -> Path:
    """Frames/s per repeat for each job, and RSS over time while saving the long clip."""
    speed = {
        name.replace("_", " "): [(i + 1, value) for i, value in enumerate(values)]
        for name, values in figures["speed"]["fps"].items()
    }
    styles = {
        "decode ours": Style("#1f77b4"),
        "decode raw": Style("#1f77b4", dashed=True),
        "encode ours": Style("#d62728"),
        "encode raw": Style("#d62728", dashed=True),
    }
    speed_chart = draw_line_chart(
        "Frames/s: our nodes vs raw PyAV", "repeat", "frames/s", speed, log_x=False, styles=styles
    )
    memory = figures["memory"]
    gib = 2**30
    samples = _peaks([(t, rss / gib) for t, rss in memory["rss_samples"]]) or [(0.0, memory["peak_rss"] / gib)]
    end = samples[-1][0] or 1.0
    frames_gib = memory["frames_bytes"] / gib
    memory_chart = draw_line_chart(
        f"RSS while saving {memory['frames']} frames",
        "seconds",
        "GiB",
        {
            "RSS": samples,
            "frames' size": [(0.0, frames_gib), (end, frames_gib)],
            "1.5x frames (limit)": [(0.0, 1.5 * frames_gib), (end, 1.5 * frames_gib)],
        },
        log_x=False,
        styles={"frames' size": Style("#2ca02c", dashed=True), "1.5x frames (limit)": Style("#d62728", dashed=True)},
    )
    return side_by_side(path, [speed_chart, memory_chart])


def _peaks(samples: list[tuple[float, float]], points: int = 80) -> list[tuple[float, float]]:
    """At most ``points`` samples for the chart: the highest of each run of neighbours, so no peak is lost."""
    step = max(1, len(samples) // points)
    return [max(samples[i : i + step], key=lambda sample: sample[1]) for i in range(0, len(samples), step)]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=240, help="frames in the speed test clip")
    parser.add_argument("--size", type=int, default=512, help="frame width and height")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each job")
    parser.add_argument("--memory-frames", type=int, default=1000, help="frames in the memory test clip")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "video_io.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "bench" / "results" / "video_io.png")
    parser.add_argument("--memory-child", nargs=3, metavar=("FRAMES", "SIZE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("frames", "size", "repeats", "memory_frames"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.size % 2:
        parser.error("--size must be even (h264 with 4:2:0 chroma)")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.memory_child:
        frames, size, work = args.memory_child
        print(json.dumps(memory_child(int(frames), int(size), Path(work))))
        return
    with tempfile.TemporaryDirectory(prefix="reelgraph-video-bench-") as temp:
        speed = measure_speed(args, Path(temp) / "speed")
        memory = measure_memory(args, Path(temp) / "memory")
    figures = {
        "settings": {"frames": args.frames, "size": args.size, "repeats": args.repeats, "fps": FPS, "crf": CRF},
        "targets": TARGETS,
        "speed": speed,
        "memory": memory,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    print(summary_text(figures))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    print(f"\nwrote {args.out} and {plot(args.plot, figures)}")


if __name__ == "__main__":
    main()
