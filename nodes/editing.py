"""Token-level editing nodes: inpaint, outpaint / extend canvas, variations, img2img. Kept tokens come back unchanged."""

from __future__ import annotations

import torch.nn.functional as F
from comfy_api.v0_0_2 import io, ui
from torch import Tensor

from ..gptimg_core import image_generators, img2img_keep, inpaint, outpaint, pixel_mask_to_tokens, variation_keep
from ..gptimg_core.sampling import WINDOW
from . import comfy_adapter as adapter
from . import sampling_part
from .checks import NodeInputError, check_tokens_fit, check_widgets, core_errors
from .layouts import check_mask
from .objects import GPTImgCond, GPTImgModel, GPTImgTokens, GPTImgVQ
from .sampling_part import FLOORS, Chosen, SamplingNode, auto_count, decoding_inputs, particles_input, sampling_inputs
from .sockets import model_input, negative_input, positive_input, preview_vq_input, tokens_input, tokens_output


def mask_modes() -> list[io.Input]:
    """mask_mode, threshold, grow: how a pixel mask selects tokens (as gptimg_core.pixel_mask_to_tokens)."""
    return [
        io.Combo.Input(
            "mask_mode",
            options=["any", "threshold"],
            default="any",
            tooltip="any: a token is repainted if any of its pixels is masked; threshold: if at least `threshold` "
            "of them are.",
        ),
        io.Float.Input(
            "threshold",
            default=0.5,
            min=0.0,
            max=1.0,
            step=0.01,
            tooltip="Fraction of a token's pixels that must be masked (mask_mode threshold).",
        ),
        io.Int.Input("grow", default=0, min=0, max=64, tooltip="Grow the selection by this many whole tokens."),
    ]


def grid_info(mask: Tensor, ds: int) -> dict:
    """The UI's token grid: {"h", "w", "coverage": h*w fractions masked (row-major), "downsample"} of mask (H, W)."""
    cover = F.avg_pool2d(mask.float()[None, None], ds)[0, 0]  # (h, w)
    return {
        "h": int(cover.shape[0]),
        "w": int(cover.shape[1]),
        "coverage": [
            float(v) for v in cover.flatten()
        ],  # unrounded: the overlay must select exactly what the node does
        "downsample": int(ds),
    }


class TokenInpaint(SamplingNode):
    NAME = "Token Inpaint"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return adapter.schema(
            "GPTImgTokenInpaint",
            display_name=cls.NAME,
            category="gptimg/editing",
            description="Repaints the tokens under a mask; every other token stays exactly as it was. More candidates "
            "run several fills side by side and keep the one the kept tokens after the hole agree with best.",
            inputs=[
                model_input(),
                tokens_input("Tokens of the image to edit (from VQ Encode or a sampler)."),
                io.Mask.Input("mask", tooltip="Where to repaint (1 = repaint), the size of the tokens' image."),
                positive_input(),
                negative_input(),
                preview_vq_input(),
                *sampling_inputs(),
                *mask_modes(),
                particles_input(),
                io.Int.Input(
                    "passes",
                    default=1,
                    min=1,
                    max=16,
                    tooltip="Rounds of particles (the same fills as more particles, in less memory); the best fill of all "
                    "rounds is kept.",
                ),
                *decoding_inputs(),
            ],
            outputs=[tokens_output("The tokens with the masked part repainted.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(
        cls,
        mask_mode: str,
        threshold: float | None,
        cfg: float | None,
        temperature: float | None,
        top_k: int | None,
        top_p: float | None,
        candidates: int | None,
        decoding: str | None = None,
        window: int | None = None,
    ) -> bool | str:
        return check_widgets(
            cls, FLOORS, mask_mode=mask_mode, threshold=threshold, cfg=cfg, temperature=temperature, top_k=top_k,
            top_p=top_p, candidates=candidates, decoding=decoding, window=window,
        )  # fmt: skip

    @classmethod
    def execute(
        cls,
        model: GPTImgModel,
        tokens: GPTImgTokens,
        mask: Tensor,
        positive: GPTImgCond,
        seed: int,
        cfg: float,
        temperature: float,
        top_k: int,
        top_p: float,
        mask_mode: str,
        threshold: float,
        grow: int,
        candidates: int,
        passes: int,
        negative: GPTImgCond | None = None,
        vq: GPTImgVQ | None = None,
        decoding: str = "ar",
        window: int = WINDOW,
    ) -> io.NodeOutput:
        check_tokens_fit(cls.NAME, model, tokens)
        h, w = tokens.grid
        ds = tokens.downsample or _infer_downsample(cls.NAME, mask, (h, w))
        m = check_mask(mask, (h * ds, w * ds), cls.NAME, "the tokens' image")
        if m.shape[0] not in (1, tokens.batch):
            raise NodeInputError(
                cls.NAME, "mask", f"has {m.shape[0]} masks for {tokens.batch} images; give one mask, or one per image"
            )
        with core_errors(cls.NAME, "mask"):
            redo = pixel_mask_to_tokens(m, ds, mode=mask_mode, threshold=threshold, grow=grow)
        keep = ~redo.expand(tokens.batch, h, w)
        chosen = Chosen(seed, cfg, temperature, top_k, top_p, decoding, window).core_kwargs()
        codes = sampling_part.run(
            cls, model, positive, negative, tokens.batch, inpaint, tokens.codes, keep, vq=vq, task="edit",
            particles=auto_count(candidates), passes=passes, **chosen,
        )  # fmt: skip
        shown = {**ui.PreviewMask(m[:1], cls=cls).as_dict(), "gptimg_grid": [grid_info(m[0], ds)]}
        return io.NodeOutput(tokens.with_codes(codes), ui=shown)


def _infer_downsample(node: str, mask: Tensor, grid: tuple[int, int]) -> int:
    """Pixels per token for tokens that do not know their VQ: the mask must be a whole multiple of the grid."""
    H, W = mask.shape[-2:]
    h, w = grid
    if H % h or W % w or H // h != W // w:
        raise NodeInputError(
            node,
            "mask",
            f"is {W}x{H}, which does not fit the tokens' {h}x{w} grid; give a mask the size of the decoded image "
            "(or connect a VQ to the sampler so the tokens know their pixel size)",
        )
    return H // h


class Outpaint(SamplingNode):
    NAME = "Outpaint / Extend Canvas"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return adapter.schema(
            "GPTImgOutpaint",
            display_name=cls.NAME,
            category="gptimg/editing",
            description="Places the tokens at (top, left) in the model's grid and generates everything around them; "
            "negative offsets shift the image out on that side (extending the canvas on the other).",
            inputs=[
                model_input(),
                tokens_input("Tokens to place (a grid no larger than the model's)."),
                positive_input(),
                negative_input(),
                preview_vq_input(),
                io.Int.Input(
                    "top", default=0, min=-64, max=64, tooltip="Row (in tokens) of the placed grid's top edge."
                ),
                io.Int.Input(
                    "left", default=0, min=-64, max=64, tooltip="Column (in tokens) of the placed grid's left edge."
                ),
                *sampling_inputs(),
                *decoding_inputs(),
            ],
            outputs=[tokens_output("A full grid: the placed tokens unchanged, the rest generated.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(
        cls,
        model: GPTImgModel,
        tokens: GPTImgTokens,
        positive: GPTImgCond,
        top: int,
        left: int,
        seed: int,
        cfg: float,
        temperature: float,
        top_k: int,
        top_p: float,
        negative: GPTImgCond | None = None,
        vq: GPTImgVQ | None = None,
        decoding: str = "ar",
        window: int = WINDOW,
    ) -> io.NodeOutput:
        check_tokens_fit(cls.NAME, model, tokens, exact_grid=False)
        g, (h, w) = model.gpt.grid, tokens.grid
        if not (-h < top < g and -w < left < g):
            raise NodeInputError(
                cls.NAME,
                "top" if not -h < top < g else "left",
                f"places the {h}x{w} tokens at ({top}, {left}), entirely outside the model's {g}x{g} grid; "
                f"use top in {-h + 1}..{g - 1} and left in {-w + 1}..{g - 1}",
            )
        chosen = Chosen(seed, cfg, temperature, top_k, top_p, decoding, window).core_kwargs()
        codes = sampling_part.run(
            cls, model, positive, negative, tokens.batch, outpaint, tokens.codes, vq=vq, task="edit", top=top, left=left,
            **chosen,
        )  # fmt: skip
        return io.NodeOutput(tokens.with_codes(codes))


class Variations(SamplingNode):
    NAME = "Variations"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return adapter.schema(
            "GPTImgVariations",
            display_name=cls.NAME,
            category="gptimg/editing",
            description="Keeps the first token rows of each image and regenerates the rest, several times.",
            inputs=[
                model_input(),
                tokens_input(),
                positive_input(),
                negative_input(),
                preview_vq_input(),
                io.Int.Input(
                    "keep_rows", default=2, min=0, max=64, tooltip="Token rows kept from the top of the image."
                ),
                io.Int.Input("batch_size", default=4, min=1, max=64, tooltip="Variations per input image."),
                *sampling_inputs(),
                *decoding_inputs(),
            ],
            outputs=[tokens_output("batch_size variations of each input image (in input order).")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(
        cls,
        model: GPTImgModel,
        tokens: GPTImgTokens,
        positive: GPTImgCond,
        keep_rows: int,
        batch_size: int,
        seed: int,
        cfg: float,
        temperature: float,
        top_k: int,
        top_p: float,
        negative: GPTImgCond | None = None,
        vq: GPTImgVQ | None = None,
        decoding: str = "ar",
        window: int = WINDOW,
    ) -> io.NodeOutput:
        check_tokens_fit(cls.NAME, model, tokens)
        h = tokens.grid[0]
        if keep_rows > h:
            raise NodeInputError(cls.NAME, "keep_rows", f"is {keep_rows} but the grid has {h} rows; use 0..{h}")
        codes = tokens.codes.repeat_interleave(batch_size, 0)  # (B * n, h, w)
        keep = variation_keep(tuple(codes.shape), keep_rows)
        chosen = Chosen(seed, cfg, temperature, top_k, top_p, decoding, window).core_kwargs()
        out = sampling_part.run(
            cls, model, positive, negative, codes.shape[0], inpaint, codes, keep, vq=vq, task="edit", **chosen
        )
        return io.NodeOutput(tokens.with_codes(out))


class Img2Img(SamplingNode):
    NAME = "Token img2img"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return adapter.schema(
            "GPTImgImg2Img",
            display_name=cls.NAME,
            category="gptimg/editing",
            description="Regenerates a random fraction (strength) of each image's tokens, keeping the others.",
            inputs=[
                model_input(),
                tokens_input(),
                positive_input(),
                negative_input(),
                preview_vq_input(),
                io.Float.Input(
                    "strength",
                    default=0.5,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Fraction of tokens to regenerate: 0 keeps the image, 1 regenerates it all.",
                ),
                *sampling_inputs(),
                *decoding_inputs(),
            ],
            outputs=[tokens_output("The tokens with a random `strength` fraction regenerated.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(
        cls,
        strength: float | None,
        cfg: float | None,
        temperature: float | None,
        top_k: int | None,
        top_p: float | None,
        decoding: str | None = None,
        window: int | None = None,
    ) -> bool | str:
        return check_widgets(
            cls,
            FLOORS,
            strength=strength,
            cfg=cfg,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            decoding=decoding,
            window=window,
        )

    @classmethod
    def execute(
        cls,
        model: GPTImgModel,
        tokens: GPTImgTokens,
        positive: GPTImgCond,
        strength: float,
        seed: int,
        cfg: float,
        temperature: float,
        top_k: int,
        top_p: float,
        negative: GPTImgCond | None = None,
        vq: GPTImgVQ | None = None,
        decoding: str = "ar",
        window: int = WINDOW,
    ) -> io.NodeOutput:
        check_tokens_fit(cls.NAME, model, tokens)
        chosen = Chosen(seed, cfg, temperature, top_k, top_p, decoding, window).core_kwargs()
        keep = img2img_keep(tuple(tokens.codes.shape), strength, generator=image_generators(seed, tokens.batch))
        out = sampling_part.run(
            cls, model, positive, negative, tokens.batch, inpaint, tokens.codes, keep, vq=vq, task="edit", **chosen
        )
        return io.NodeOutput(tokens.with_codes(out))
