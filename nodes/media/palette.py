"""GIF colours: one palette built from every frame (``palettegen``), then applied with dithering (``paletteuse``)."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

import av
import av.filter
import numpy as np

PALETTEGEN_ARGS = "max_colors=256:reserve_transparent=0:stats_mode=full"
# Ordered (Bayer) dithering: unlike error diffusion its pattern stays put from frame to frame (no crawling noise),
# and it is faster; measured on gradients it also has the lower mean error.
PALETTEUSE_ARGS = "dither=bayer:bayer_scale=3:diff_mode=rectangle"
# palettegen keeps a histogram entry per distinct colour (up to 16M, about 1 GB over a long video); binning each
# channel to steps of 4 (65 levels, black and white kept exact) bounds it to a few MB and barely moves the palette.
HISTOGRAM_LEVELS = np.minimum(np.round(np.arange(256) / 4) * 4, 255).astype(np.uint8)


def build_palette(frames: Iterable[np.ndarray], width: int, height: int, time_base: Fraction) -> av.VideoFrame:
    """Run ``frames`` (uint8 ``[H, W, 3]``, ``width`` x ``height``) through ``palettegen``; return the palette frame."""
    graph = av.filter.Graph()
    source = graph.add_buffer(width=width, height=height, format="rgb24", time_base=time_base)
    generator = graph.add("palettegen", PALETTEGEN_ARGS)
    sink = graph.add("buffersink")
    source.link_to(generator)
    generator.link_to(sink)
    graph.configure()
    for pixels in frames:
        graph.push(av.VideoFrame.from_ndarray(HISTOGRAM_LEVELS[pixels], format="rgb24"))
        _drain(graph)  # lavfi runs only when output is requested; without this every frame queues up
    graph.push(None)
    return _drain(graph)[0]


class PaletteMapper:
    """Maps rgb24 frames to pal8 frames with one fixed palette (``paletteuse``, error-diffusion dithering)."""

    def __init__(self, palette: av.VideoFrame, width: int, height: int, time_base: Fraction) -> None:
        """Build the filter graph for ``width`` x ``height`` frames with ``palette`` from ``build_palette``."""
        self._graph = av.filter.Graph()
        self._source = self._graph.add_buffer(width=width, height=height, format="rgb24", time_base=time_base)
        palette_source = self._graph.add_buffer(
            width=palette.width, height=palette.height, format=palette.format.name, time_base=time_base
        )
        mapper = self._graph.add("paletteuse", PALETTEUSE_ARGS)
        self._source.link_to(mapper, 0, 0)
        palette_source.link_to(mapper, 0, 1)
        mapper.link_to(self._graph.add("buffersink"))
        self._graph.configure()
        palette.pts = 0
        palette_source.push(palette)
        palette_source.push(None)

    def map(self, frame: av.VideoFrame | None) -> list[av.VideoFrame]:
        """Feed one frame (``None`` at the end) and return the pal8 frames that are ready."""
        self._source.push(frame)
        return _drain(self._graph)


def _drain(graph: av.filter.Graph) -> list[av.VideoFrame]:
    """Every frame the graph can output now (pulling is also what makes it process its queued input)."""
    ready = []
    while True:
        try:
            ready.append(graph.pull())
        except (av.BlockingIOError, av.EOFError):
            return ready
