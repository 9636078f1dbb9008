"""Shared by the node modules: layout conversions at the ComfyUI boundary, checks that name the node
and input, and the model/condition/token sockets."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from comfy_api.v0_0_2 import io
from torch import Tensor

from ..gptimg_core import GPTConfig, to_uint8
from .types import COND, MODEL, TOKENS, VQ, GPTImgCond, GPTImgModel, GPTImgTokens, GPTImgVQ

SEED_MAX = 0xFFFFFFFFFFFFFFFF  # ComfyUI's seed range; torch.Generator takes any 64-bit seed


class NodeInputError(ValueError):
    """Bad input to a gptimg node: '<node>: <input>: what was expected, the fix'."""

    def __init__(self, node: str, name: str, message: str) -> None:
        super().__init__(f"{node}: {name}: {message}")


@contextmanager
def core_errors(node: str, name: str) -> Iterator[None]:
    """Re-raise the core's ValueError/TypeError (a bad value it found) prefixed with the node and input."""
    try:
        yield
    except NodeInputError:
        raise
    except (ValueError, TypeError) as e:
        raise NodeInputError(node, name, str(e)) from e


def check_widgets(node: type[io.ComfyNode], floors: dict[str, float] | None = None, **values: object) -> bool | str:
    """validate_inputs answer for widgets: True, or '<node>: <input>: ...' (an HTTP 400 at queue time).

    ComfyUI 0.3.75 does not check a V3 node's combo values itself, lets NaN through every min/max check, and
    skips its own min/max for inputs named in validate_inputs: so dropdowns must be one of the choices, and
    numbers finite and within the widget's min..max. `floors`: widgets whose minimum, -1, stands for the
    model's recommended value, and their real minimum above it. None (a widget fed by a link) is checked
    when it runs."""
    schema = node.define_schema()
    inputs = {i.id: i for i in schema.inputs}
    for name, value in values.items():
        widget = inputs[name]
        if value is None:
            continue
        if isinstance(widget, io.Combo.Input):
            allowed = list(widget.options)
            if value not in allowed:
                shown = ", ".join(repr(o) for o in allowed[:12]) + (", …" if len(allowed) > 12 else "")
                return f"{schema.display_name}: {name}: {value!r} is not one of the choices ({shown}); pick one from the list"
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{schema.display_name}: {name}: expected a number, got {type(value).__name__} {value!r}"
        if not math.isfinite(value):
            return f"{schema.display_name}: {name}: must be a finite number, got {value!r}"
        low, high = getattr(widget, "min", None), getattr(widget, "max", None)
        auto = floors is not None and name in floors and value == low
        if auto:
            continue
        if floors is not None and name in floors:
            low = floors[name]
        if (low is not None and value < low) or (high is not None and value > high):
            extra = f", or {widget.min} for the model's recommended value" if floors and name in floors else ""
            return (
                f"{schema.display_name}: {name}: {value!r} is outside {low}..{high}; use a value in that range{extra}"
            )
    return True


# ---- layouts ---------------------------------------------------------------------------------------


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


# ---- checks ----------------------------------------------------------------------------------------


def check_condition(node: str, name: str, model: GPTImgModel, cond: GPTImgCond) -> None:
    """The condition must be of the model's kind and shape (made with this model)."""
    c = model.cfg
    if cond.kind != c.model_type:
        fix = "use Encode Prompt" if c.model_type == "t2i" else "use Class Label"
        raise NodeInputError(
            node, name, f"is a {cond.kind} condition but the model is {c.model_type}; {fix} with this model"
        )
    if not isinstance(c, GPTConfig):  # another family (Janus) checks its own conditions
        with core_errors(node, name):
            model.gpt.condition(cond.cond, cond.mask, None, None, guided=False, where="the condition")
        return
    if c.model_type == "t2i" and tuple(cond.cond.shape[1:]) != (c.cls_token_num, c.caption_dim):
        raise NodeInputError(
            node,
            name,
            f"holds text features {tuple(cond.cond.shape[1:])} but the model takes ({c.cls_token_num}, "
            f"{c.caption_dim}); encode the prompt with this model and the text encoder it was trained with",
        )
    if c.model_type == "c2i" and int(cond.cond.max()) >= c.num_classes:
        raise NodeInputError(
            node,
            name,
            f"class id {int(cond.cond.max())} is not one of this model's {c.num_classes}; "
            "make the Class Label with this model",
        )


def check_vq_fits(node: str, name: str, model: GPTImgModel, vq: GPTImgVQ) -> None:
    """The VQ's codebook must be the GPT's vocabulary."""
    if vq.codebook_size != model.cfg.vocab_size:
        raise NodeInputError(
            node,
            name,
            f"the VQ has {vq.codebook_size} codes but the GPT's vocabulary is {model.cfg.vocab_size} tokens; "
            "load the VQ tokenizer this GPT was trained with",
        )


def check_tokens_fit(node: str, model: GPTImgModel, tokens: GPTImgTokens, *, exact_grid: bool = True) -> None:
    """Tokens must come from the GPT's vocabulary and (unless placed by outpainting) fill its grid."""
    g = model.cfg.grid
    if tokens.codebook_size != model.cfg.vocab_size:
        raise NodeInputError(
            node,
            "tokens",
            f"come from a VQ with {tokens.codebook_size} codes but the GPT's vocabulary is "
            f"{model.cfg.vocab_size}; encode the image with the VQ this GPT was trained with",
        )
    h, w = tokens.grid
    if h > g or w > g or (exact_grid and (h, w) != (g, g)):
        ds = tokens.downsample
        size = f"a {g * ds}x{g * ds} image" if ds else f"an image of {g}x{g} tokens"
        want = "larger than" if (h > g or w > g) else "not"
        raise NodeInputError(
            node,
            "tokens",
            f"form a {h}x{w} grid, {want} the model's {g}x{g}; give {size} to VQ Encode"
            + ("" if not exact_grid else " (or use Outpaint / Extend Canvas to place a smaller one)"),
        )


# ---- shared widgets --------------------------------------------------------------------------------


def model_input() -> io.Input:
    return io.Custom(MODEL).Input("model", tooltip="The GPT image model (from Load GPT Image Model).")


def tokens_input(tooltip: str = "Image tokens to edit (from VQ Encode or a sampler).") -> io.Input:
    return io.Custom(TOKENS).Input("tokens", tooltip=tooltip)


def positive_input() -> io.Input:
    return io.Custom(COND).Input(
        "positive", tooltip="What to draw: from Encode Prompt (t2i models) or Class Label (c2i models)."
    )


def negative_input() -> io.Input:
    return io.Custom(COND).Input(
        "negative",
        optional=True,
        tooltip="Optional: the condition guidance steers away from (replaces the positive's own negative prompt; "
        "default: the model's null condition).",
    )


def preview_vq_input() -> io.Input:
    return io.Custom(VQ).Input(
        "vq",
        optional=True,
        tooltip="Optional: the VQ tokenizer, for live previews while sampling (the last one is the finished image).",
    )


def tokens_output(tooltip: str) -> io.Output:
    return io.Custom(TOKENS).Output(display_name="tokens", tooltip=tooltip)
