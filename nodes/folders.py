"""The folders nodes read from and write to, handed to nodes as the run's ``folders`` service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FOLDERS_SERVICE = "folders"


@dataclass(frozen=True)
class Folders:
    """Where inputs come from and outputs go (``--input-dir``, ``--output-dir``, ``--temp-dir``)."""

    output_dir: Path
    input_dir: Path
    temp_dir: Path

    @classmethod
    def under(cls, base: Path) -> Folders:
        """The default layout: ``output/``, ``input/`` and ``temp/`` below ``base``."""
        return cls(output_dir=base / "output", input_dir=base / "input", temp_dir=base / "temp")
