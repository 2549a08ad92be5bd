"""Drawn point trajectories ("tracks") for motion control: parsing, serialising, resampling, splatting, drawing.

Coordinates are continuous pixel positions on a canvas of ``width`` x ``height``: pixel ``k`` covers ``[k, k + 1)``,
so its centre is at ``k + 0.5``. A point is visible when it lies on the closed canvas ``[0, width] x [0, height]``;
points outside are kept as given (a track may leave the frame and come back) but marked invisible.

JSON accepted by ``parse_tracks_json`` (the formats ComfyUI trajectory editors write):

- a list of tracks, each a list of ``{"x": .., "y": ..}`` points, one per frame (the spline editor / ATI format);
- a list of tracks, each a list of ``[x, y]`` pairs;
- a single track given as a bare list of points in either form;
- any of these JSON-encoded once more as a JSON string (KJNodes' SplineEditor sometimes outputs that).

Tracks of unequal lengths are refused unless a frame count is given, in which case every track is resampled to it.
``tracks_to_json`` writes the first format.
"""

from __future__ import annotations

import colorsys
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

_GOLDEN_RATIO_CONJUGATE = 0.6180339887498949  # hue step that keeps successive track colours far apart
_TRACK_SATURATION = 0.85
_TRACK_VALUE = 1.0


@dataclass(frozen=True, eq=False)
class Tracks:
    """``count`` tracks over ``frames`` frames: ``points`` ``[N, F, 2]`` float32 (x, y) in canvas pixels and
    ``visible`` ``[N, F]`` bool, on a canvas of ``width`` x ``height`` pixels."""

    points: torch.Tensor
    visible: torch.Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.points.ndim != 3 or self.points.shape[2] != 2 or not self.points.is_floating_point():
            raise ValueError(f"track points must be a float tensor [tracks, frames, 2], got {tuple(self.points.shape)}")
        if self.points.shape[0] < 1 or self.points.shape[1] < 1:
            raise ValueError(f"tracks need at least one track of one frame, got {tuple(self.points.shape[:2])}")
        if self.visible.dtype != torch.bool or self.visible.shape != self.points.shape[:2]:
            raise ValueError(
                f"track visibility must be a bool tensor {tuple(self.points.shape[:2])}, "
                f"got {self.visible.dtype} {tuple(self.visible.shape)}"
            )
        if self.width < 1 or self.height < 1:
            raise ValueError(f"the canvas must be at least 1x1 pixels, got {self.width}x{self.height}")

    @classmethod
    def on_canvas(cls, points: torch.Tensor, width: int, height: int) -> Tracks:
        """Tracks whose points are visible exactly where they lie on the canvas."""
        points = points.to(torch.float32)
        return cls(points, _inside(points, width, height), width, height)

    @property
    def count(self) -> int:
        return self.points.shape[0]

    @property
    def frames(self) -> int:
        return self.points.shape[1]


def _inside(points: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Whether each point lies on the closed canvas ``[0, width] x [0, height]``."""
    x, y = points.unbind(-1)
    return (x >= 0) & (x <= width) & (y >= 0) & (y <= height)


def parse_tracks_json(text: str, width: int, height: int, frames: int | None = None) -> Tracks:
    """Tracks from trajectory-editor JSON (see the module docstring for the formats).

    With ``frames`` every track is resampled to that many frames (so lengths may differ); without it all tracks must
    have the same length. ValueError says what is wrong and where.
    """
    return tracks_from_data(_decode(text), width, height, frames)


def _decode(text: str) -> Any:
    """The JSON value of ``text``, decoding again while the value is itself a string (double-encoded JSON)."""
    data: Any = text
    depth = 0
    while isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as error:
            where = "" if depth == 0 else f" (inside the JSON string at depth {depth})"
            raise ValueError(
                f"is not valid JSON{where}: {error.msg} at line {error.lineno} column {error.colno} (char {error.pos})"
            ) from error
        depth += 1
    return data


def tracks_from_data(data: Any, width: int, height: int, frames: int | None = None) -> Tracks:
    """Tracks from decoded JSON: a list of tracks, or one track, of ``{"x", "y"}`` points or ``[x, y]`` pairs."""
    if not isinstance(data, list):
        raise ValueError(f"must be a list of tracks, got {type(data).__name__}")
    if not data:
        raise ValueError("holds no tracks")
    raw_tracks = [data] if _looks_like_point(data[0]) else data
    tracks = [_parse_track(raw, index) for index, raw in enumerate(raw_tracks)]
    if frames is None:
        _check_equal_lengths(tracks)
        points = torch.tensor(tracks, dtype=torch.float64)
        return Tracks.on_canvas(points, width, height)
    _check_frames(frames)
    resampled = [_interpolate(torch.tensor([track], dtype=torch.float64), frames) for track in tracks]
    return Tracks.on_canvas(torch.cat(resampled), width, height)


def _looks_like_point(item: Any) -> bool:
    """Whether ``item`` is a point rather than a track: a dict, or a list whose first element is not a list."""
    return isinstance(item, dict) or (isinstance(item, list) and bool(item) and not isinstance(item[0], (list, dict)))


def _parse_track(raw: Any, index: int) -> list[tuple[float, float]]:
    if not isinstance(raw, list):
        raise ValueError(f"track {index} is not a list of points (got {type(raw).__name__})")
    if not raw:
        raise ValueError(f"track {index} has no points")
    return [_parse_point(point, f"track {index}, point {number}") for number, point in enumerate(raw)]


def _parse_point(point: Any, where: str) -> tuple[float, float]:
    if isinstance(point, dict):
        for key in ("x", "y"):
            if key not in point:
                raise ValueError(f"{where} has no {key!r} (keys: {', '.join(map(str, point)) or 'none'})")
        return _coordinate(point["x"], where, "x"), _coordinate(point["y"], where, "y")
    if isinstance(point, list) and len(point) == 2:
        return _coordinate(point[0], where, "x"), _coordinate(point[1], where, "y")
    raise ValueError(f'{where} must be {{"x": .., "y": ..}} or [x, y], got {json.dumps(point)[:80]}')


def _coordinate(value: Any, where: str, axis: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: {axis} is not a number (got {type(value).__name__} {json.dumps(value)[:40]})")
    if not math.isfinite(value):
        raise ValueError(f"{where}: {axis} is not finite ({value})")
    return float(value)


def _check_equal_lengths(tracks: list[list[tuple[float, float]]]) -> None:
    first = len(tracks[0])
    differing = [f"track {index} has {len(track)}" for index, track in enumerate(tracks) if len(track) != first]
    if differing:
        raise ValueError(
            f"tracks have different lengths (points per track): track 0 has {first} but {', '.join(differing)}; "
            "give a frame count to resample every track to it"
        )


def _check_frames(frames: int) -> None:
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")


def tracks_to_json(tracks: Tracks) -> str:
    """The tracks as a JSON list of tracks of ``{"x": .., "y": ..}`` points (visibility follows from the canvas)."""
    return json.dumps([[{"x": x, "y": y} for x, y in track] for track in tracks.points.tolist()])


def _time_samples(length: int, frames: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For ``frames`` samples spread evenly over ``length`` source frames (first and last kept): the source frame
    below each sample, the one above, and the fraction of the way between them. One output frame takes the first."""
    if frames == 1:
        position = torch.zeros(1, dtype=torch.float64)
    else:
        position = torch.arange(frames, dtype=torch.float64) * (length - 1) / (frames - 1)
    lower = position.floor().long().clamp(max=length - 1)
    upper = (lower + 1).clamp(max=length - 1)
    return lower, upper, position - lower


def _interpolate(points: torch.Tensor, frames: int) -> torch.Tensor:
    """Tracks ``[N, L, 2]`` linearly interpolated along time (in float64) to ``[N, frames, 2]``."""
    lower, upper, fraction = _time_samples(points.shape[1], frames)
    source = points.to(torch.float64)
    return torch.lerp(source[:, lower], source[:, upper], fraction.view(1, -1, 1))


def resample_tracks(tracks: Tracks, frames: int) -> Tracks:
    """The tracks at ``frames`` frames: linear interpolation along time with the first and last points kept.

    A resampled point is visible when the source points on both sides of it are (or the one it falls on exactly).
    """
    _check_frames(frames)
    lower, upper, fraction = _time_samples(tracks.frames, frames)
    points = _interpolate(tracks.points, frames).to(tracks.points.dtype)
    exact = (fraction == 0).unsqueeze(0)
    visible = tracks.visible[:, lower] & (tracks.visible[:, upper] | exact)
    return Tracks(points, visible, tracks.width, tracks.height)


def splat_tracks(tracks: Tracks, height: int, width: int, frames: int, temperature: float, topk: int) -> torch.Tensor:
    """Per-frame Gaussian weights of each track at every pixel of a ``height`` x ``width`` grid: ``[frames, N, h, w]``.

    After resampling the tracks to ``frames`` (``resample_tracks``) and scaling the canvas onto the grid (x by
    ``width / canvas width``, y by ``height / canvas height``), track n at frame t has the raw weight
    ``g = exp(-d^2 / temperature)`` at a pixel, d being the distance in grid pixels from the pixel's centre
    ``(j + 0.5, i + 0.5)`` to the track's point; an invisible point has weight 0. Per pixel only the ``topk``
    largest raw weights are kept (ties broken arbitrarily), the rest set to 0. The kept weights are then normalised
    to mixing proportions ``g_n / sum(g)`` and scaled by the pixel's largest raw weight ``max(g)``, so:

    - mixing features with these weights blends overlapping tracks in proportion to their Gaussians;
    - a pixel's weights sum to ``max(g)``: 1 on a track's point, falling off with the nearest track's Gaussian;
    - a lone track's weights are its plain Gaussian, and a pixel no visible track reaches gets all zeros.
    """
    if height < 1 or width < 1:
        raise ValueError(f"the splat grid must be at least 1x1, got {width}x{height}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if topk < 1:
        raise ValueError(f"topk must be at least 1, got {topk}")
    if frames != tracks.frames:
        tracks = resample_tracks(tracks, frames)
    scale = torch.tensor([width / tracks.width, height / tracks.height], dtype=torch.float32)
    points = (tracks.points.to(torch.float32) * scale).transpose(0, 1)  # [frames, N, 2]
    columns = torch.arange(width, dtype=torch.float32) + 0.5
    rows = torch.arange(height, dtype=torch.float32) + 0.5
    dx = columns.view(1, 1, 1, -1) - points[..., 0, None, None]
    dy = rows.view(1, 1, -1, 1) - points[..., 1, None, None]
    logits = -(dx.square() + dy.square()) / temperature  # [frames, N, h, w]
    logits = logits.masked_fill(~tracks.visible.transpose(0, 1)[..., None, None], -math.inf)
    if topk < tracks.count:
        kept = torch.full_like(logits, -math.inf)
        top = logits.topk(topk, dim=1)
        logits = kept.scatter_(1, top.indices, top.values)
    # In log space: log g_n + log max(g) - log sum(g). A pixel no track reaches has every logit at -inf; its
    # largest and sum are taken as 1 there so the weights come out 0 instead of NaN.
    largest = logits.amax(dim=1, keepdim=True)
    reached = torch.isfinite(largest)
    log_total = torch.logsumexp(torch.where(reached, logits, 0.0), dim=1, keepdim=True)
    return (logits + torch.where(reached, largest, 0.0) - torch.where(reached, log_total, 0.0)).exp()


def _colour_bytes(count: int) -> list[tuple[int, int, int]]:
    """``count`` distinct bright 8-bit RGB colours, hues a golden-ratio step apart."""
    colours = (
        colorsys.hsv_to_rgb((index * _GOLDEN_RATIO_CONJUGATE) % 1.0, _TRACK_SATURATION, _TRACK_VALUE)
        for index in range(count)
    )
    return [(round(red * 255), round(green * 255), round(blue * 255)) for red, green, blue in colours]


def track_colours(count: int) -> torch.Tensor:
    """The colours ``render_tracks`` gives ``count`` tracks, ``[count, 3]`` in 0..1 (multiples of 1/255)."""
    return torch.tensor(_colour_bytes(count), dtype=torch.float32) / 255.0


def render_tracks(frames: torch.Tensor, tracks: Tracks, point_radius: float = 4.0, line_width: int = 2) -> torch.Tensor:
    """``frames`` ``[F, H, W, C]`` (C >= 3) with the tracks drawn over them, for checking a trajectory by eye.

    Each track gets a colour from ``track_colours``; at frame t its path over frames 0..t is a polyline of
    ``line_width`` (segments between consecutive visible points only) and its point at t a filled circle of
    ``point_radius``, both in video pixels; invisible points are not drawn, and circles lie above all paths.
    The canvas is stretched onto the frame size (x by ``W / canvas width``, y by ``H / canvas height``). The video
    needs as many frames as the tracks, or one (a still, repeated for every track frame). Undrawn pixels and
    channels past the third are returned unchanged.
    """
    if frames.ndim != 4 or frames.shape[3] < 3:
        raise ValueError(f"frames must be [frames, height, width, 3+], got {tuple(frames.shape)}")
    count, height, width = frames.shape[:3]
    if count not in (1, tracks.frames):
        raise ValueError(
            f"the video has {count} frames but the tracks have {tracks.frames}; resample the tracks to {count}"
        )
    scale = torch.tensor([width / tracks.width, height / tracks.height], dtype=torch.float64)
    # Pillow puts integer coordinates on pixel centres; the tracks put pixel centres at k + 0.5.
    points = (tracks.points.to(torch.float64) * scale - 0.5).tolist()
    visible = tracks.visible.tolist()
    colours = _colour_bytes(tracks.count)
    output = frames.expand(tracks.frames, -1, -1, -1).clone()
    for frame in range(tracks.frames):
        painted, mask = _draw_frame(points, visible, colours, frame, (width, height), point_radius, line_width)
        drawn = torch.from_numpy(mask).to(frames.device).unsqueeze(-1) > 0
        paint = torch.from_numpy(painted).to(frames.device, frames.dtype) / 255.0
        output[frame, :, :, :3] = torch.where(drawn, paint, output[frame, :, :, :3])
    return output


def _draw_frame(
    points: list[list[list[float]]],
    visible: list[list[bool]],
    colours: list[tuple[int, int, int]],
    frame: int,
    size: tuple[int, int],
    point_radius: float,
    line_width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The colours ``[H, W, 3]`` uint8 and coverage mask ``[H, W]`` uint8 of all tracks drawn at ``frame``."""
    painted = Image.new("RGB", size)
    mask = Image.new("L", size)
    layers = (ImageDraw.Draw(painted), ImageDraw.Draw(mask))
    if line_width > 0:
        for track, shown, colour in zip(points, visible, colours, strict=True):
            for run in _visible_runs(track[: frame + 1], shown[: frame + 1]):
                for layer, fill in zip(layers, (colour, 255), strict=True):
                    layer.line(run, fill=fill, width=line_width, joint="curve")
    if point_radius > 0:
        for track, shown, colour in zip(points, visible, colours, strict=True):
            if shown[frame]:
                x, y = track[frame]
                box = (x - point_radius, y - point_radius, x + point_radius, y + point_radius)
                for layer, fill in zip(layers, (colour, 255), strict=True):
                    layer.ellipse(box, fill=fill)
    return np.array(painted), np.array(mask)


def _visible_runs(track: list[list[float]], shown: list[bool]) -> list[list[tuple[float, float]]]:
    """The stretches of two or more consecutive visible points of a path, each as a list of (x, y)."""
    runs: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for (x, y), is_shown in zip(track, shown, strict=True):
        if is_shown:
            current.append((x, y))
            continue
        if len(current) > 1:
            runs.append(current)
        current = []
    if len(current) > 1:
        runs.append(current)
    return runs
