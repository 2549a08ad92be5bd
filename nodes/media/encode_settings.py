"""Encoding settings for ``encode_video``: containers, codecs and their options, validated up front."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType

import av

CODECS_BY_CONTAINER: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"mp4": ("h264", "h265"), "webm": ("vp9", "av1"), "gif": ("gif",), "webp": ("webp",), "apng": ("apng",)}
)
FILE_EXTENSIONS: Mapping[str, str] = MappingProxyType(
    {"mp4": "mp4", "webm": "webm", "gif": "gif", "webp": "webp", "apng": "png"}
)
ENCODERS: Mapping[str, str] = MappingProxyType(
    {
        "h264": "libx264",
        "h265": "libx265",
        "vp9": "libvpx-vp9",
        "av1": "libsvtav1",
        "gif": "gif",
        "webp": "libwebp_anim",
        "apng": "apng",
    }
)
VIDEO_CONTAINERS = ("mp4", "webm")
CRF_RANGES: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"h264": (0, 51), "h265": (0, 51), "vp9": (0, 63), "av1": (0, 63)}
)
WHOLE_CRF_CODECS = ("vp9", "av1")  # libvpx and SVT-AV1 take integer crf values
DEFAULT_CRF: Mapping[str, float] = MappingProxyType({"h264": 19, "h265": 24, "vp9": 32, "av1": 35})
X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
# vp9's "preset" is libvpx's cpu-used (higher is faster); av1's is the SVT-AV1 preset number (higher is faster).
PRESETS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"h264": X26X_PRESETS, "h265": X26X_PRESETS, "vp9": tuple(map(str, range(9))), "av1": tuple(map(str, range(14)))}
)
DEFAULT_PRESETS: Mapping[str, str] = MappingProxyType({"h264": "medium", "h265": "fast", "vp9": "5", "av1": "8"})
DEFAULT_PIXEL_FORMAT = "yuv420p"
MAX_GIF_FRAME_RATE = 100
UINT16_MAX = 65535


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}; got {value!r}")


@dataclass(frozen=True)
class EncodeSettings:
    """How to encode: container and codec, rate, quality knobs, looping, odd-size padding and embedded metadata.

    ``crf``, ``preset`` and ``pixel_format`` apply to mp4/webm only (``None`` picks the codec's default); ``quality``,
    ``lossless`` and ``method`` to webp; ``compress_level`` to apng; ``loop`` (0 = forever, else the play count the
    format stores) to gif/webp/apng.
    """

    container: str
    codec: str
    frame_rate: Fraction
    crf: float | None = None
    preset: str | None = None
    pixel_format: str | None = None
    quality: int = 80
    lossless: bool = False
    method: int = 4
    compress_level: int = 4
    loop: int = 0
    pad_odd: bool = True
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        """Validate every option; raise ``ValueError`` naming the bad option and what is allowed."""
        if self.container not in CODECS_BY_CONTAINER:
            raise ValueError(f"container must be one of {', '.join(CODECS_BY_CONTAINER)}; got {self.container!r}")
        codecs = CODECS_BY_CONTAINER[self.container]
        if self.codec not in codecs:
            raise ValueError(f"codec for {self.container} must be one of {', '.join(codecs)}; got {self.codec!r}")
        object.__setattr__(self, "frame_rate", _checked_rate(self.frame_rate, self.container))
        self._check_video_options()
        _check_int("quality", self.quality, 0, 100)
        _check_int("method", self.method, 0, 6)
        _check_int("compress_level", self.compress_level, 0, 9)
        _check_int("loop", self.loop, 0, UINT16_MAX)
        for name in ("lossless", "pad_odd"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False; got {getattr(self, name)!r}")
        if not isinstance(self.metadata, Mapping) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in self.metadata.items()
        ):
            raise ValueError("metadata must map str keys to str values")
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    def _check_video_options(self) -> None:
        """Check crf, preset and pixel_format against the codec (they are for mp4/webm only)."""
        if self.container not in VIDEO_CONTAINERS:
            for name in ("crf", "preset", "pixel_format"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} applies to mp4 and webm only; leave it None for {self.container}")
            return
        low, high = CRF_RANGES[self.codec]
        whole = self.codec in WHOLE_CRF_CODECS
        if self.crf is not None and (
            isinstance(self.crf, bool)
            or not isinstance(self.crf, int | float)
            or not low <= self.crf <= high
            or (whole and not float(self.crf).is_integer())
        ):
            kind = "a whole number" if whole else "a number"
            raise ValueError(f"crf for {self.codec} must be {kind} from {low} to {high}; got {self.crf!r}")
        if self.preset is not None and self.preset not in PRESETS[self.codec]:
            raise ValueError(
                f"preset for {self.codec} must be one of {', '.join(PRESETS[self.codec])}; got {self.preset!r}"
            )
        formats = sorted(video_format.name for video_format in av.Codec(self.encoder, "w").video_formats or ())
        if self.pixel_format is not None and self.pixel_format not in formats:
            raise ValueError(
                f"pixel_format for {self.codec} must be one of {', '.join(formats)}; got {self.pixel_format!r}"
            )

    @property
    def encoder(self) -> str:
        """The FFmpeg encoder name (``libx264``, ``libvpx-vp9``, ...)."""
        return ENCODERS[self.codec]

    @property
    def output_pixel_format(self) -> str | None:
        """The pixel format mp4/webm frames are encoded in (``None`` for gif/webp/apng, which pick their own)."""
        if self.container not in VIDEO_CONTAINERS:
            return None
        return self.pixel_format or DEFAULT_PIXEL_FORMAT

    def codec_options(self) -> dict[str, str]:
        """The encoder's FFmpeg options for these settings."""
        if self.container == "webp":
            return {
                "quality": str(self.quality),
                "lossless": str(int(self.lossless)),
                "compression_level": str(self.method),
            }
        if self.container == "apng":
            return {"compression_level": str(self.compress_level)}
        if self.container == "gif":
            return {}
        crf = f"{DEFAULT_CRF[self.codec] if self.crf is None else self.crf:g}"
        preset = self.preset or DEFAULT_PRESETS[self.codec]
        if self.codec == "vp9":
            return {"crf": crf, "b": "0", "deadline": "good", "cpu-used": preset, "row-mt": "1"}
        if self.codec == "h265":
            return {"crf": crf, "preset": preset, "x265-params": "log-level=error"}
        return {"crf": crf, "preset": preset}

    def container_options(self) -> dict[str, str]:
        """The muxer's FFmpeg options for these settings."""
        if self.container == "mp4":
            return {"movflags": "use_metadata_tags+faststart"}
        if self.container in ("gif", "webp"):
            return {"loop": str(self.loop)}
        if self.container == "apng":
            return {"plays": str(self.loop)}
        return {}


def _checked_rate(rate: object, container: str) -> Fraction:
    """``rate`` as an exact positive Fraction (floats snap to the nearest fraction with denominator <= 1001)."""
    if isinstance(rate, bool) or not isinstance(rate, int | float | Fraction):
        raise ValueError(f"frame_rate must be a positive Fraction, int or float; got {rate!r}")
    if isinstance(rate, float) and not math.isfinite(rate):
        raise ValueError(f"frame_rate must be finite; got {rate!r}")
    exact = Fraction(rate).limit_denominator(1001) if isinstance(rate, float) else Fraction(rate)
    if exact <= 0:
        raise ValueError(f"frame_rate must be greater than 0; got {rate!r}")
    if container == "gif" and exact > MAX_GIF_FRAME_RATE:
        raise ValueError(f"frame_rate for gif must be at most {MAX_GIF_FRAME_RATE} (delays are in 1/100 s); got {rate}")
    return exact
