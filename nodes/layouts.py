"""Layout conversion at the ComfyUI boundary: IMAGE (B, H, W, C) 0..1 and MASK (B, H, W) to and from the
core's tensors."""

from __future__ import annotations

import torch
from torch import Tensor

from ..gptimg_core import to_uint8
from .checks import NodeInputError


def image_to_pixels(image: Tensor, node: str, name: str = "image") -> Tensor:
    """ComfyUI IMAGE (B, H, W, C) float 0..1 -> pixels (B, 3, H, W) in [-1, 1] (RGB; alpha dropped)."""
    if not isinstance(image, Tensor) or image.dim() != 4 or image.shape[-1] not in (1, 3, 4):
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise NodeInputError(node, name, f"expected an IMAGE (B, H, W, 1/3/4 channels), got {got}")
    rgb = image[..., :3] if image.shape[-1] != 1 else image.expand(*image.shape[:3], 3)
    # IMAGE is 0..1 by convention; some nodes (upscalers) overshoot slightly, which the VQ would refuse
    return (rgb.permute(0, 3, 1, 2).float() * 2.0 - 1.0).clamp(-1.0, 1.0)


def pixels_to_image(pixels: Tensor) -> Tensor:
    """Decoder pixels (B, 3, H, W) -> ComfyUI IMAGE (B, H, W, 3) float 0..1, rounded as LlamaGen saves PNGs."""
    return torch.from_numpy(to_uint8(pixels)).float() / 255.0


def check_mask(mask: Tensor, size: tuple[int, int], node: str, what: str, name: str = "mask") -> Tensor:
    """ComfyUI MASK (B, H, W) or (H, W), 1 = masked -> float (B, H, W), checked against an (H, W) size."""
    if not isinstance(mask, Tensor) or mask.dim() not in (2, 3):
        got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise NodeInputError(node, name, f"expected a MASK (B, H, W), got {got}")
    m = mask.float().unsqueeze(0) if mask.dim() == 2 else mask.float()
    if tuple(m.shape[-2:]) != tuple(size):
        raise NodeInputError(
            node,
            name,
            f"the mask is {m.shape[-1]}x{m.shape[-2]} but {what} is {size[1]}x{size[0]}; "
            "use a mask of the same size (e.g. resize it with an image/mask resize node)",
        )
    return m
