"""API load benchmark: latency of ``POST /prompt``, ``GET /queue`` and ``GET /system_stats`` under load.

A real server (``python main.py serve``) runs in its own process. The benchmark connects ``--clients`` WebSocket
clients (each reads everything it is sent), keeps the worker busy with uncached image chains, and meanwhile
times ``--samples`` requests of each kind. It then times ``POST /prompt`` -> ``execution_success`` for an uncached
``--chain``-node ``ImageInvert`` chain (512x512), with the clients still connected. Percentiles are printed
against the target (p99 under 50 ms), written as JSON and drawn as latency distributions.

    python bench/api_load.py --clients 100 --samples 300 --chain 500
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.plot import draw_line_chart, side_by_side  # noqa: E402

P99_TARGET_MS = 50.0
LOAD_CHAIN = 100  # nodes per background prompt: enough work that the worker never idles between samples
IMAGE_SIZE = 512
KINDS = ("post_prompt", "get_queue", "get_system_stats")


def chain_prompt(n: int, color: int, size: int = IMAGE_SIZE) -> dict[str, Any]:
    """``EmptyImage -> n x ImageInvert -> PreviewImage``; a new ``color`` makes every node uncached."""
    prompt: dict[str, Any] = {
        "0": {"class_type": "EmptyImage", "inputs": {"width": size, "height": size, "batch_size": 1, "color": color}}
    }
    for index in range(1, n + 1):
        prompt[str(index)] = {"class_type": "ImageInvert", "inputs": {"image": [str(index - 1), 0]}}
    prompt["out"] = {"class_type": "PreviewImage", "inputs": {"images": [str(n), 0]}}
    return prompt


class ServerUnderTest:
    """``python main.py serve`` in its own process, with every folder in a temporary directory."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "main.py", "serve", "--port", str(self.port)]
        for flag in ("output", "input", "temp", "data", "models"):
            command += [f"--{flag}-dir", str(folder / flag)]
        self.log = (folder / "server.log").open("wb")
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=self.log, stderr=self.log, env=env)

    async def ready(self, session: aiohttp.ClientSession, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}")
            try:
                async with session.get(f"{self.base}/queue") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        raise RuntimeError("the server did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


class Listeners:
    """``count`` WebSocket clients that read everything; one of them (``main``) submits and waits for events."""

    def __init__(self, session: aiohttp.ClientSession, base: str, count: int) -> None:
        self._session, self._base, self._count = session, base.replace("http", "ws", 1), count
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.received = 0
        self._readers: list[asyncio.Task[None]] = []
        self._waiters: dict[str, asyncio.Future[float]] = {}

    async def __aenter__(self) -> Listeners:
        for index in range(self._count):
            self.sockets.append(await self._session.ws_connect(f"{self._base}/ws?clientId=bench-{index}"))
        self._readers = [asyncio.create_task(self._read(index, ws)) for index, ws in enumerate(self.sockets)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in self.sockets:
            await ws.close()
        for reader in self._readers:
            reader.cancel()

    async def _read(self, index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            self.received += 1
            if index == 0 and message.type == aiohttp.WSMsgType.TEXT:
                parsed = json.loads(message.data)
                if parsed["type"] == "execution_success":
                    waiter = self._waiters.pop(parsed["data"]["prompt_id"], None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(time.perf_counter())

    def success_of(self, prompt_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters[prompt_id] = future
        return future


async def timed(call: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await call()
    return (time.perf_counter() - start) * 1000.0, result


async def measure_under_load(
    session: aiohttp.ClientSession, base: str, samples: int, colors: list[int]
) -> tuple[dict[str, list[float]], float]:
    """Time each request kind ``samples`` times while the worker runs chains; returns ms lists and busy share."""
    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    busy = 0

    async def post_prompt() -> Any:
        body = {"prompt": chain_prompt(LOAD_CHAIN, colors.pop()), "client_id": "bench-0"}
        async with session.post(f"{base}/prompt", json=body) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def get(path: str) -> Any:
        async with session.get(f"{base}{path}") as response:
            assert response.status == 200
            return await response.json()

    for _ in range(3):  # a backlog, so the first samples already see a busy worker
        await post_prompt()
    for _ in range(samples):
        for kind in KINDS:
            if kind == "post_prompt":
                elapsed, _ = await timed(post_prompt)
            elif kind == "get_queue":
                elapsed, queue = await timed(lambda: get("/queue"))
                busy += bool(queue["queue_running"])
            else:
                elapsed, _ = await timed(lambda: get("/system_stats"))
            latencies[kind].append(elapsed)
            await asyncio.sleep(0.01)
    return latencies, busy / samples


async def wait_idle(session: aiohttp.ClientSession, base: str) -> None:
    while True:
        async with session.get(f"{base}/prompt") as response:
            if (await response.json())["exec_info"]["queue_remaining"] == 0:
                return
        await asyncio.sleep(0.05)


async def measure_chain(
    session: aiohttp.ClientSession, base: str, listeners: Listeners, chain: int, repeats: int, colors: list[int]
) -> list[float]:
    """Seconds from ``POST /prompt`` to ``execution_success`` for an uncached ``chain``-node prompt."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        body = {"prompt": chain_prompt(chain, colors.pop()), "client_id": "bench-0"}
        async with session.post(f"{base}/prompt", json=body) as response:
            prompt_id = (await response.json())["prompt_id"]
        finished = await asyncio.wait_for(listeners.success_of(prompt_id), 300)
        times.append(finished - start)
    return times


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def summarize(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 0.50),
        "p90": percentile(values, 0.90),
        "p99": percentile(values, 0.99),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


async def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    server = ServerUnderTest(folder)
    colors = list(range(1, 2_000_000, 7))
    try:
        timeout = aiohttp.ClientTimeout(total=600)
        connector = aiohttp.TCPConnector(limit=0)  # the default pool of 100 would be taken by the sockets alone
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await server.ready(session)
            async with Listeners(session, server.base, args.clients) as listeners:
                latencies, busy_share = await measure_under_load(session, server.base, args.samples, colors)
                await wait_idle(session, server.base)
                chain = await measure_chain(session, server.base, listeners, args.chain, args.repeats, colors)
                received = listeners.received
    finally:
        server.stop()
    return {"latencies_ms": latencies, "busy_share": busy_share, "chain_seconds": chain, "ws_messages": received}


def report(args: argparse.Namespace, raw: dict[str, Any]) -> dict[str, Any]:
    summaries = {kind: summarize(values) for kind, values in raw["latencies_ms"].items()}
    chain = raw["chain_seconds"]
    checks = {f"{kind}_p99_under_{P99_TARGET_MS:g}ms": s["p99"] < P99_TARGET_MS for kind, s in summaries.items()}
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": {
            "clients": args.clients,
            "samples": args.samples,
            "chain": args.chain,
            "repeats": args.repeats,
            "load_chain": LOAD_CHAIN,
            "image_size": IMAGE_SIZE,
        },
        "latency_ms": summaries,
        "worker_busy_share": raw["busy_share"],
        "chain_to_success_s": {"median": statistics.median(chain), "all": chain},
        "ws_messages_received": raw["ws_messages"],
        "checks": checks,
        "raw_latencies_ms": raw["latencies_ms"],
    }


def summary_text(figures: dict[str, Any]) -> str:
    settings = figures["settings"]
    lines = [
        f"API load: {settings['clients']} WebSocket clients, {settings['samples']} samples per request, worker busy "
        f"in {figures['worker_busy_share']:.0%} of samples ({settings['load_chain']}-node 512x512 chains)",
        f"{'request':<18}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}  target p99 < {P99_TARGET_MS:g} ms",
    ]
    for kind, s in figures["latency_ms"].items():
        verdict = "ok" if figures["checks"][f"{kind}_p99_under_{P99_TARGET_MS:g}ms"] else "MISSED"
        lines.append(f"{kind:<18}{s['p50']:>9.1f}{s['p90']:>9.1f}{s['p99']:>9.1f}{s['max']:>9.1f}  {verdict}")
    chain = figures["chain_to_success_s"]
    lines.append(
        f"POST /prompt -> execution_success, {settings['chain']}-node chain: median {chain['median'] * 1000:.0f} ms "
        f"over {len(chain['all'])} runs ({', '.join(f'{s * 1000:.0f}' for s in chain['all'])} ms)"
    )
    lines.append(f"WebSocket messages read by the clients: {figures['ws_messages_received']}")
    return "\n".join(lines)


def plot(path: Path, figures: dict[str, Any]) -> Path:
    """Latency distributions (share of requests answered within x ms) per request kind."""
    series = {}
    for kind, values in figures["raw_latencies_ms"].items():
        ordered = sorted(values)
        series[kind] = [(max(v, 0.01), (i + 1) / len(ordered)) for i, v in enumerate(ordered)]
    chart = draw_line_chart(
        f"API latency, {figures['settings']['clients']} WS clients, worker busy",
        "latency (ms, log)",
        "share of requests answered",
        series,
        log_x=True,
    )
    return side_by_side(path, [chart])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100, help="WebSocket clients connected throughout")
    parser.add_argument("--samples", type=int, default=300, help="timed requests of each kind")
    parser.add_argument("--chain", type=int, default=500, help="nodes in the end-to-end chain")
    parser.add_argument("--repeats", type=int, default=5, help="end-to-end chain runs")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "api_load.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "bench" / "results" / "api_load.png")
    args = parser.parse_args(argv)
    for name in ("clients", "samples", "chain", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reelgraph-api-bench-") as temp:
        raw = asyncio.run(run(args, Path(temp)))
    figures = report(args, raw)
    print(summary_text(figures))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    print(f"\nwrote {args.out} and {plot(args.plot, figures)}")


if __name__ == "__main__":
    main()
