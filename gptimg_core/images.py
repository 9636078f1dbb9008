"""Layout conversions at the edges: pixels in [-1, 1] (B, 3, H, W) <-> uint8 images (B, H, W, 3)."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor


def to_uint8(pixels: Tensor) -> np.ndarray:
    """Decoder output (B, 3, H, W), unclamped, -> uint8 (B, H, W, 3), as LlamaGen saves images."""
    x = (pixels.float() * 127.5 + 128.0).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def from_uint8(images: np.ndarray | Tensor) -> Tensor:
    """uint8 (B, H, W, 3) or (H, W, 3) -> pixels (B, 3, H, W) float32 in [-1, 1]. Integer arrays of other
    types are taken when every value is in 0..255; float and bool arrays are refused, since a cast would
    wrap or truncate them without a word."""
    x = images if isinstance(images, Tensor) else torch.from_numpy(np.ascontiguousarray(images))
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(
            f"from_uint8: images must be an integer (uint8) array (B, H, W, 3) or (H, W, 3), got {x.dtype}; "
            f"a float image in 0..1 converts to [-1, 1] as x * 2 - 1"
        )
    if x.dim() not in (3, 4) or x.shape[-1] != 3:
        raise ValueError(f"from_uint8: images must be (B, H, W, 3) or (H, W, 3), got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8 and x.numel() and (int(x.min()) < 0 or int(x.max()) > 255):
        raise ValueError(f"from_uint8: images must hold 0..255, got values in [{int(x.min())}, {int(x.max())}]")
    x = x.cpu().to(torch.uint8)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def _open(path: str, where: str) -> Image.Image:
    """Image.open, with a file that is not an image or is a decompression bomb (more pixels than
    PIL.Image.MAX_IMAGE_PIXELS; PIL only warns up to twice that) raised as a ValueError naming it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ValueError(f"{where}: {path!r} is too large to open safely ({e})") from e
        except UnidentifiedImageError as e:
            raise ValueError(f"{where}: {path!r} is not an image file PIL can read") from e


def load_image(path: str) -> np.ndarray:
    """An image file -> uint8 (H, W, 3) RGB."""
    with _open(path, "load_image") as im:
        return np.asarray(im.convert("RGB"))


def load_mask(path: str) -> np.ndarray:
    """A mask image -> float32 (H, W) in [0, 1], 1 = repaint: white pixels of a grey image, or the
    transparent ones of an image with alpha (as ComfyUI's LoadImage reads masks)."""
    with _open(path, "load_mask") as im:
        if "A" in im.getbands():
            return 1.0 - np.asarray(im.getchannel("A"), dtype=np.float32) / 255.0
        return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def save_png(image: np.ndarray, path: str) -> None:
    Image.fromarray(image).save(path)
