"""Super-resolution models through spandrel: loading (``model``), tiled and batched running (``tiling``), and
importing spandrel without torchvision (``spandrel_import``)."""

from models.upscale.model import SizeRule, UpscaleModel, WrongUpscaleFileError, load_upscale_model
from models.upscale.tiling import TileOptions, upscale_batches

__all__ = ["SizeRule", "TileOptions", "UpscaleModel", "WrongUpscaleFileError", "load_upscale_model", "upscale_batches"]
