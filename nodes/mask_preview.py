"""Token Mask Preview: shows which token cells a pixel mask selects for repainting."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io, ui
from torch import Tensor

from ..gptimg_core import pixel_mask_to_tokens
from . import comfy_adapter as adapter
from .checks import NodeInputError, check_widgets, core_errors
from .editing import grid_info, mask_modes
from .layouts import check_mask
from .objects import VQ, GPTImgVQ

TINT = torch.tensor([1.0, 0.25, 0.25])  # selected cells are blended towards red
TINT_ALPHA = 0.45
LINE_DARKEN = 0.6  # grid lines: pixels on cell borders keep this much of their brightness


def draw_token_cells(image: Tensor, selected: Tensor, ds: int) -> Tensor:
    """IMAGE (B, H, W, 3) and selected token cells (B, H/ds, W/ds) bool -> the image with those cells
    tinted and the token grid drawn (B, H, W, 3), float 0..1."""
    cells = selected.repeat_interleave(ds, 1).repeat_interleave(ds, 2)[..., None]  # (B, H, W, 1)
    out = torch.where(cells, image * (1 - TINT_ALPHA) + TINT * TINT_ALPHA, image)
    H, W = image.shape[1:3]
    border = torch.zeros(H, W, dtype=torch.bool)
    border[::ds, :] = True
    border[:, ::ds] = True
    return torch.where(border[None, :, :, None], out * LINE_DARKEN, out).clamp(0, 1)


class TokenMaskPreview(io.ComfyNode):
    NAME = "Token Mask Preview"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return adapter.schema(
            node_id="GPTImgTokenMaskPreview",
            display_name=cls.NAME,
            category="gptimg/editing",
            description="Shows which token cells a mask selects (tinted, with the token grid), with the same "
            "mask_mode / threshold / grow as Token Inpaint.",
            inputs=[
                io.Image.Input("image", tooltip="The image the mask belongs to."),
                io.Mask.Input("mask", tooltip="Where to repaint (1 = repaint), the size of the image."),
                io.Custom(VQ).Input("vq", tooltip="The VQ tokenizer (its downsample sets the token cell size)."),
                *mask_modes(),
            ],
            outputs=[io.Image.Output(display_name="IMAGE", tooltip="The image with the selected token cells tinted.")],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, mask_mode: str, threshold: float | None) -> bool | str:
        return check_widgets(cls, mask_mode=mask_mode, threshold=threshold)

    @classmethod
    def execute(
        cls, image: Tensor, mask: Tensor, vq: GPTImgVQ, mask_mode: str, threshold: float, grow: int
    ) -> io.NodeOutput:
        if not isinstance(image, Tensor) or image.dim() != 4:
            raise NodeInputError(
                cls.NAME, "image", f"expected an IMAGE (B, H, W, C), got {getattr(image, 'shape', image)}"
            )
        H, W = image.shape[1:3]
        ds = vq.downsample
        if H % ds or W % ds:
            raise NodeInputError(
                cls.NAME,
                "image",
                f"is {W}x{H}, not a multiple of the VQ's downsample {ds}; crop or resize it to "
                f"{W - W % ds or ds}x{H - H % ds or ds} (as VQ Encode with fit=crop does)",
            )
        m = check_mask(mask, (H, W), cls.NAME, "the image")
        if m.shape[0] not in (1, image.shape[0]):
            raise NodeInputError(
                cls.NAME, "mask", f"has {m.shape[0]} masks for {image.shape[0]} images; give one, or one per image"
            )
        with core_errors(cls.NAME, "mask"):
            selected = pixel_mask_to_tokens(m, ds, mode=mask_mode, threshold=threshold, grow=grow)
        rgb = (image[..., :3] if image.shape[-1] >= 3 else image[..., :1].expand(-1, -1, -1, 3)).float().cpu()
        out = draw_token_cells(rgb, selected.expand(rgb.shape[0], -1, -1).cpu(), ds)
        # the UI shows the plain image: the web overlay draws the cells the current widgets select
        shown = {**ui.PreviewImage(rgb, cls=cls).as_dict(), "gptimg_grid": [grid_info(m[0], ds)]}
        return io.NodeOutput(out, ui=shown)
