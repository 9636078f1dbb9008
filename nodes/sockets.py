"""The sockets the nodes share: model, condition, tokens and the optional preview VQ."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from .objects import COND, MODEL, TOKENS, VQ


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
