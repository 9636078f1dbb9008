"""VQ nodes: IMAGE -> tokens (encode) and tokens -> IMAGE (decode)."""

from __future__ import annotations

import torch.nn.functional as F
from comfy_api.v0_0_2 import io
from torch import Tensor

from . import comfy_adapter as adapter
from .checks import NodeInputError, check_widgets, core_errors
from .layouts import image_to_pixels, pixels_to_image
from .objects import TOKENS, VQ, GPTImgTokens, GPTImgVQ
from .sockets import tokens_output


def fit_to_multiple(pixels: Tensor, ds: int, fit: str, node: str) -> Tensor:
    """Pixels (B, 3, H, W) -> sides that are multiples of ds: centre "crop", "resize" (nearest multiple), or "error"."""
    H, W = pixels.shape[-2:]
    if H % ds == 0 and W % ds == 0:
        return pixels
    if fit == "error" or H < ds or W < ds:
        raise NodeInputError(
            node,
            "image",
            f"is {W}x{H}, not a multiple of the VQ's downsample {ds} (e.g. {W - W % ds or ds}x{H - H % ds or ds}); "
            "set fit to crop or resize, or resize the image first",
        )
    if fit == "crop":
        h, w = H - H % ds, W - W % ds
        top, left = (H - h) // 2, (W - w) // 2
        return pixels[..., top : top + h, left : left + w]
    h, w = max(ds, round(H / ds) * ds), max(ds, round(W / ds) * ds)
    return F.interpolate(pixels, size=(h, w), mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)


class VQEncode(io.ComfyNode):
    NAME = "VQ Encode"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return adapter.schema(
            node_id="GPTImgVQEncode",
            display_name=cls.NAME,
            category="gptimg/vq",
            description="Turns images into VQ tokens (one token per downsample x downsample pixels).",
            inputs=[
                io.Custom(VQ).Input("vq", tooltip="The VQ tokenizer (from Load VQ Tokenizer)."),
                io.Image.Input("image", tooltip="Images to encode; sides should be multiples of the VQ's downsample."),
                io.Combo.Input(
                    "fit",
                    options=["crop", "resize", "error"],
                    default="crop",
                    tooltip="When a side is not a multiple of the downsample: crop the centre, resize to the nearest "
                    "multiple, or stop with an error.",
                ),
            ],
            outputs=[tokens_output("The image tokens (they remember which VQ made them).")],
        )

    @classmethod
    def validate_inputs(cls, fit: str) -> bool | str:
        return check_widgets(cls, fit=fit)

    @classmethod
    def execute(cls, vq: GPTImgVQ, image: Tensor, fit: str) -> io.NodeOutput:
        pixels = fit_to_multiple(image_to_pixels(image, cls.NAME), vq.downsample, fit, cls.NAME)
        adapter.ready(vq.managed)
        with core_errors(cls.NAME, "image"):
            codes = vq.vq.encode(pixels)
        return io.NodeOutput(GPTImgTokens(codes.cpu(), vq.codebook_size, vq.vq_id, vq.downsample))


class VQDecode(io.ComfyNode):
    NAME = "VQ Decode"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return adapter.schema(
            node_id="GPTImgVQDecode",
            display_name=cls.NAME,
            category="gptimg/vq",
            description="Turns image tokens back into images.",
            inputs=[
                io.Custom(VQ).Input("vq", tooltip="The VQ tokenizer the tokens belong to."),
                io.Custom(TOKENS).Input(
                    "tokens", tooltip="Image tokens (from a sampler, an editing node or VQ Encode)."
                ),
            ],
            outputs=[io.Image.Output(display_name="IMAGE", tooltip="The decoded images.")],
        )

    @classmethod
    def execute(cls, vq: GPTImgVQ, tokens: GPTImgTokens) -> io.NodeOutput:
        if tokens.vq_id is not None and tokens.vq_id != vq.vq_id:
            raise NodeInputError(
                cls.NAME,
                "tokens",
                f"were made with another VQ (id {tokens.vq_id}, this one is {vq.vq_id} = {vq.name}); decode them with "
                "the VQ that encoded them, or the one the GPT was trained with",
            )
        if tokens.codebook_size != vq.codebook_size:
            raise NodeInputError(
                cls.NAME,
                "tokens",
                f"come from a vocabulary of {tokens.codebook_size} codes but this VQ has {vq.codebook_size}; "
                "decode with the VQ the GPT was trained with",
            )
        adapter.ready(vq.managed)
        with core_errors(cls.NAME, "tokens"):
            pixels = vq.vq.decode(tokens.codes)
        return io.NodeOutput(pixels_to_image(pixels).to(adapter.intermediate_device()))
