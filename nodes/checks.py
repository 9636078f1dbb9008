"""Checks that name the node and the input: the pack's error type, the core's errors re-raised with the node
named, queue-time widget checks, and checks that a condition, a VQ or tokens fit the model."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from comfy_api.v0_0_2 import io

from .objects import GPTImgCond, GPTImgModel, GPTImgTokens, GPTImgVQ


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


def check_condition(node: str, name: str, model: GPTImgModel, cond: GPTImgCond) -> None:
    """The condition must be of the model's kind and fit it (made with this model): the model's own condition
    check, whatever its family, with the node and input named."""
    kind = model.gpt.kind
    if cond.kind != kind:
        fix = "use Encode Prompt" if kind == "t2i" else "use Class Label"
        raise NodeInputError(node, name, f"is a {cond.kind} condition but the model is {kind}; {fix} with this model")
    with core_errors(node, name):
        model.gpt.condition(cond.cond, cond.mask, None, None, guided=False, where="the condition")


def check_vq_fits(node: str, name: str, model: GPTImgModel, vq: GPTImgVQ) -> None:
    """The VQ's codebook must be the GPT's vocabulary."""
    if vq.codebook_size != model.gpt.vocab_size:
        raise NodeInputError(
            node,
            name,
            f"the VQ has {vq.codebook_size} codes but the GPT's vocabulary is {model.gpt.vocab_size} tokens; "
            "load the VQ tokenizer this GPT was trained with",
        )


def check_tokens_fit(node: str, model: GPTImgModel, tokens: GPTImgTokens, *, exact_grid: bool = True) -> None:
    """Tokens must come from the GPT's vocabulary and (unless placed by outpainting) fill its grid."""
    g = model.gpt.grid
    if tokens.codebook_size != model.gpt.vocab_size:
        raise NodeInputError(
            node,
            "tokens",
            f"come from a VQ with {tokens.codebook_size} codes but the GPT's vocabulary is "
            f"{model.gpt.vocab_size}; encode the image with the VQ this GPT was trained with",
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
