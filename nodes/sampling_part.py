"""The sampling part that the Sampler and every editing node share: its widgets, and how it runs the core.

A sampling widget at AUTO (-1) stands for the loaded model's recommended value (its Recommended, shown by
the loader node); the values a run used are shown under the node (the gptimg.SamplingStats line).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from comfy_api.v0_0_2 import io
from torch import Tensor

from ..gptimg_core.sampling import DECODINGS, WINDOW
from . import comfy_adapter as adapter
from .checks import check_condition, check_vq_fits, check_widgets, core_errors
from .objects import GPTImgCond, GPTImgModel, GPTImgVQ, condition_kwargs

AUTO = -1
SEED_MAX = 0xFFFFFFFFFFFFFFFF  # ComfyUI's seed range; torch.Generator takes any 64-bit seed
# The real minimum of each widget whose minimum, AUTO, stands for the model's value (for check_widgets).
FLOORS = {"cfg": 1.0, "temperature": 0.0, "top_k": 0, "top_p": 0.01, "candidates": 1}
_AUTO_TIP = " -1 = the model's recommended value (the loader node shows it; the run shows what it used)."


def seed_input() -> io.Input:
    return io.Int.Input(
        "seed",
        default=0,
        min=0,
        max=SEED_MAX,
        control_after_generate=True,
        tooltip="Random seed: image i of a batch draws from seed + i, so it is the same image as a batch of one "
        "with that seed; the same seed and settings give the same tokens.",
    )


def cfg_input() -> io.Input:
    return io.Float.Input(
        "cfg",
        default=AUTO,
        min=AUTO,
        max=30.0,
        step=0.1,
        tooltip="Classifier-free guidance scale: higher follows the condition more closely; 1.0 switches guidance off."
        + _AUTO_TIP,
    )


def temperature_input() -> io.Input:
    return io.Float.Input(
        "temperature",
        default=AUTO,
        min=AUTO,
        max=5.0,
        step=0.01,
        tooltip="Sampling temperature: below 1 is more conservative, above 1 more varied; 0 is greedy." + _AUTO_TIP,
    )


def top_k_input() -> io.Input:
    return io.Int.Input(
        "top_k",
        default=AUTO,
        min=AUTO,
        max=1 << 20,
        tooltip="Sample only among the k most likely tokens; 0 = off, 1 = greedy." + _AUTO_TIP,
    )


def top_p_input() -> io.Input:
    return io.Float.Input(
        "top_p",
        default=AUTO,
        min=AUTO,
        max=1.0,
        step=0.01,
        tooltip="Nucleus sampling: sample among the most likely tokens holding this much probability; 1.0 = off."
        + _AUTO_TIP,
    )


def best_of_input() -> io.Input:
    """Draws per image (stored as `candidates`, its name in saved workflows); optional, so API prompts saved
    before it existed still run as they did (one draw)."""
    return io.Int.Input(
        "candidates",
        display_name="best_of",
        default=AUTO,
        min=AUTO,
        max=64,
        optional=True,
        tooltip="Draws per image, run side by side; each image keeps the one the model finds likeliest under the "
        "prompt. 1 = a plain draw." + _AUTO_TIP,
    )


def particles_input() -> io.Input:
    """Inpainting's fills per pass (stored as `candidates`, its name in saved workflows)."""
    return io.Int.Input(
        "candidates",
        display_name="particles",
        default=AUTO,
        min=AUTO,
        max=64,
        tooltip="Fills run side by side (particles) per pass, weighed by the kept tokens; the best is kept."
        + _AUTO_TIP,
    )


def decoding_inputs() -> list[io.Input]:
    """decoding and window; optional, so workflows saved before them still run (plain decoding)."""
    return [
        io.Combo.Input(
            "decoding",
            options=list(DECODINGS),
            default="ar",
            optional=True,
            tooltip="ar: one token per model pass. sjd: speculative Jacobi decoding, several tokens per pass with "
            "the same distribution of images (a different image for the same seed). jacobi: several tokens per "
            "pass and ar's own image for the same seed.",
        ),
        io.Int.Input(
            "window",
            default=WINDOW,
            min=1,
            max=256,
            optional=True,
            tooltip="sjd, jacobi: drafted tokens checked per pass.",
        ),
    ]


def sampling_inputs() -> list[io.Input]:
    """seed, cfg, temperature, top_k, top_p: the widgets of every sampling node, in this order."""
    return [seed_input(), cfg_input(), temperature_input(), top_k_input(), top_p_input()]


class SamplingNode(io.ComfyNode):
    """A node with the shared sampling widgets: validate_inputs refuses non-finite and out-of-range values of
    them at queue time (a node with more widgets to check overrides it, naming them all)."""

    @classmethod
    def validate_inputs(
        cls,
        cfg: float | None,
        temperature: float | None,
        top_k: int | None,
        top_p: float | None,
        decoding: str | None = None,
        window: int | None = None,
    ) -> bool | str:
        return check_widgets(
            cls, FLOORS, cfg=cfg, temperature=temperature, top_k=top_k, top_p=top_p, decoding=decoding, window=window
        )


@dataclass(frozen=True)
class Chosen:
    """The sampling widgets' values as the core takes them (AUTO -> None: the model's recommendation)."""

    seed: int
    cfg: float
    temperature: float
    top_k: int
    top_p: float
    decoding: str = "ar"
    window: int = WINDOW

    def core_kwargs(self) -> dict[str, Any]:
        def auto(v: float) -> float | None:
            return None if v == AUTO else v

        return dict(
            cfg_scale=auto(self.cfg), temperature=auto(self.temperature), top_k=auto(self.top_k),
            top_p=auto(self.top_p), decoding=self.decoding, window=self.window, seed=int(self.seed),
        )  # fmt: skip


def auto_count(value: int) -> int | None:
    """best_of / particles widget -> the core's value (None: the model's recommendation)."""
    return None if value == AUTO else value


def run(
    node: type[io.ComfyNode],
    model: GPTImgModel,
    positive: GPTImgCond,
    negative: GPTImgCond | None,
    batch: int,
    fn: Callable[..., Tensor],
    *args: Any,
    task: str,
    vq: GPTImgVQ | None = None,
    **kwargs: Any,
) -> Tensor:
    """Check the conditions, ready the models, run fn(gpt, *args, **condition, **kwargs) with progress and live
    previews (when a VQ is given) -> codes on the CPU. task: "sample" (generate) or "edit" (the editing
    functions), for the settings line. Core errors name the node."""
    check_condition(node.NAME, "positive", model, positive)
    if negative is not None:
        check_condition(node.NAME, "negative", model, negative)
    if vq is not None:
        check_vq_fits(node.NAME, "vq", model, vq)
    adapter.ready(model.managed, *([vq.managed] if vq is not None else []))
    g = model.gpt.grid
    used = _describe(model, task, kwargs)
    with adapter.SamplingProgress(node.hidden.unique_id, g * g, (g, g), vq, settings=used) as progress:
        with core_errors(node.NAME, "sampling settings"):
            cond = condition_kwargs(positive, negative, batch)
            return fn(model.gpt, *args, **cond, **kwargs, callback=progress).cpu()


def _describe(model: GPTImgModel, task: str, kwargs: dict[str, Any]) -> str:
    """The settings a run uses, in words: the widgets' values with AUTO replaced by the model's."""
    names = ("cfg_scale", "temperature", "top_k", "top_p", "decoding", "window")
    rec = model.gpt.recommended
    try:
        o = rec.options(task, **{k: kwargs.get(k) for k in names})
    except TypeError:
        return ""
    count = kwargs.get("particles" if task == "edit" else "best_of")
    count = (rec.particles if task == "edit" else rec.best_of) if count is None else count
    text = f"cfg {o.cfg_scale:g} · temperature {o.temperature:g} · top_k {o.top_k} · top_p {o.top_p:g}"
    text += f" · {count} particles" if task == "edit" else (f" · best of {count}" if count != 1 else "")
    return text + (f" · sjd window {o.window}" if o.decoding == "sjd" else "")
