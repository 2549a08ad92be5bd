"""Small line charts drawn with Pillow only (no matplotlib), for benchmark results."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

Point = tuple[float, float]
Series = dict[str, list[Point]]

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 84, 24, 44, 56
_LEGEND_ROW = 20
_GRID = "#e4e4e4"
_AXIS = "#333333"
_DASH, _GAP = 7.0, 5.0


@dataclass(frozen=True)
class Style:
    """How one series is drawn: its colour, and a dashed line (e.g. for reference figures)."""

    color: str
    dashed: bool = False


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _label(value: float) -> str:
    """A tick label: ``2000``, ``0.5``, ``1e+05``."""
    return f"{value:g}"


class Axis:
    """Maps data values to pixels along one axis, linear or logarithmic."""

    def __init__(self, values: Sequence[float], start_px: float, end_px: float, log: bool) -> None:
        self.log = log
        self.multipliers: tuple[int, ...] = (1,)
        self.start_px, self.end_px = start_px, end_px
        low, high = min(values), max(values)
        if log:
            if low <= 0:
                raise ValueError("a logarithmic axis needs positive values")
            self.multipliers = (1, 2, 5) if math.log10(high / low) <= 3.5 else (1,)
            below = max(v for v in self._log_steps(low, high) if v <= low * 1.0001)
            above = min(v for v in self._log_steps(low, high) if v >= high * 0.9999)
            self.low, self.high = math.log10(below) - 0.04, math.log10(above) + 0.04
        else:
            span = (high - low) or abs(high) or 1.0
            self.low, self.high = min(0.0, low), high + 0.05 * span
        if self.high - self.low < 1e-9:
            self.high = self.low + 1.0

    def pixel(self, value: float) -> float:
        position = math.log10(value) if self.log else value
        return self.start_px + (position - self.low) / (self.high - self.low) * (self.end_px - self.start_px)

    def _log_steps(self, low: float, high: float) -> list[float]:
        """1-2-5 (or 1-per-decade) values from the decade below ``low`` to the one above ``high``."""
        decades = range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 2)
        return [m * 10.0**d for d in decades for m in self.multipliers]

    def ticks(self) -> list[float]:
        """Tick values inside the axis: 1-2-5 steps (per decade on a log axis spanning many decades)."""
        if self.log:
            values = self._log_steps(10.0**self.low, 10.0**self.high)
            return [v for v in values if self.low <= math.log10(v) <= self.high]
        raw_step = (self.high - self.low) / 5
        magnitude = 10.0 ** math.floor(math.log10(raw_step))
        step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw_step)
        first = math.ceil(self.low / step) * step
        return [first + i * step for i in range(int((self.high - first) / step) + 1)]


def draw_line_chart(
    title: str,
    x_label: str,
    y_label: str,
    series: Series,
    *,
    log_x: bool = True,
    log_y: bool = False,
    styles: Mapping[str, Style] | None = None,
    size: tuple[int, int] = (660, 460),
) -> Image.Image:
    """One chart: a line with round markers per series, grid, labelled axes and a legend below.

    Series without an entry in ``styles`` take the next palette colour, solid.
    """
    width, plot_height = size
    height = plot_height + _LEGEND_ROW * len(series) + 8
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    points = [p for line in series.values() for p in line]
    if not points:
        raise ValueError("nothing to plot")
    left, right = _MARGIN_LEFT, width - _MARGIN_RIGHT
    top, bottom = _MARGIN_TOP, plot_height - _MARGIN_BOTTOM
    x_axis = Axis([x for x, _ in points], left, right, log_x)
    y_axis = Axis([y for _, y in points], bottom, top, log_y)
    _draw_grid(draw, x_axis, y_axis, (left, top, right, bottom))
    resolved = _styles(list(series), styles or {})
    for name, line in series.items():
        _draw_series(draw, [(x_axis.pixel(x), y_axis.pixel(y)) for x, y in line], resolved[name])
    draw.text((width / 2, 14), title, fill="black", font=_font(17), anchor="mt")
    draw.text(((left + right) / 2, bottom + 30), x_label, fill=_AXIS, font=_font(14), anchor="mt")
    _draw_vertical_text(image, y_label, (14, (top + bottom) / 2))
    _draw_legend(draw, resolved, (left, plot_height))
    return image


def _styles(names: list[str], given: Mapping[str, Style]) -> dict[str, Style]:
    palette = iter(c for c in COLORS * 2 if c not in {s.color for s in given.values()})
    return {name: given.get(name) or Style(next(palette, COLORS[0])) for name in names}


def _draw_grid(draw: ImageDraw.ImageDraw, x_axis: Axis, y_axis: Axis, box: tuple[float, float, float, float]) -> None:
    left, top, right, bottom = box
    font = _font(12)
    for value in x_axis.ticks():
        x = x_axis.pixel(value)
        draw.line([(x, top), (x, bottom)], fill=_GRID)
        draw.text((x, bottom + 6), _label(value), fill=_AXIS, font=font, anchor="mt")
    for value in y_axis.ticks():
        y = y_axis.pixel(value)
        draw.line([(left, y), (right, y)], fill=_GRID)
        draw.text((left - 6, y), _label(value), fill=_AXIS, font=font, anchor="rm")
    draw.rectangle(box, outline=_AXIS)


def _draw_series(draw: ImageDraw.ImageDraw, pixels: list[Point], style: Style) -> None:
    _draw_line(draw, pixels, style)
    for x, y in pixels:
        draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=style.color, outline="white")


def _draw_line(draw: ImageDraw.ImageDraw, pixels: list[Point], style: Style) -> None:
    if style.dashed:
        for start, end in itertools.pairwise(pixels):
            _draw_dashed(draw, start, end, style.color)
    elif len(pixels) > 1:
        draw.line(pixels, fill=style.color, width=2, joint="curve")


def _draw_dashed(draw: ImageDraw.ImageDraw, start: Point, end: Point, color: str) -> None:
    length = math.dist(start, end)
    position = 0.0
    while position < length:
        stop = min(position + _DASH, length)
        a, b = position / length, stop / length
        draw.line(
            [(start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t) for t in (a, b)],
            fill=color,
            width=2,
        )
        position = stop + _GAP


def _draw_vertical_text(image: Image.Image, text: str, center: Point) -> None:
    font = _font(14)
    left, top, right, bottom = font.getbbox(text)
    label = Image.new("RGBA", (int(right - left) + 4, int(bottom - top) + 4), (255, 255, 255, 0))
    ImageDraw.Draw(label).text((2 - left, 2 - top), text, fill=_AXIS, font=font)
    rotated = label.rotate(90, expand=True)
    image.paste(rotated, (int(center[0] - rotated.width / 2), int(center[1] - rotated.height / 2)), rotated)


def _draw_legend(draw: ImageDraw.ImageDraw, styles: dict[str, Style], origin: Point) -> None:
    font = _font(13)
    x, y = origin
    for index, (name, style) in enumerate(styles.items()):
        row = y + index * _LEGEND_ROW
        _draw_line(draw, [(x, row + 8), (x + 26, row + 8)], style)
        draw.ellipse((x + 9, row + 4, x + 17, row + 12), fill=style.color, outline="white")
        draw.text((x + 34, row + 8), name, fill="black", font=font, anchor="lm")


def side_by_side(path: Path, charts: Sequence[Image.Image]) -> Path:
    """Save charts next to each other, top-aligned, as one PNG."""
    width = sum(chart.width for chart in charts)
    height = max(chart.height for chart in charts)
    sheet = Image.new("RGB", (width, height), "white")
    x = 0
    for chart in charts:
        sheet.paste(chart, (x, 0))
        x += chart.width
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def in_rows(path: Path, rows: Sequence[Sequence[Image.Image]]) -> Path:
    """Save rows of charts (each row's charts next to each other, top-aligned) one below the other, as one PNG."""
    width = max(sum(chart.width for chart in row) for row in rows)
    height = sum(max(chart.height for chart in row) for row in rows)
    sheet = Image.new("RGB", (width, height), "white")
    y = 0
    for row in rows:
        x = 0
        for chart in row:
            sheet.paste(chart, (x, y))
            x += chart.width
        y += max(chart.height for chart in row)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
