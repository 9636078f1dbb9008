"""The autoregressive sampler node: condition -> image tokens, one token at a time, with live previews."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..gptimg_core import generate
from ..gptimg_core.sampling import WINDOW
from . import comfy_adapter as adapter
from . import sampling_part
from .checks import check_widgets
from .objects import VQ, GPTImgCond, GPTImgModel, GPTImgTokens, GPTImgVQ
from .sampling_part import FLOORS, Chosen, SamplingNode, auto_count, best_of_input, decoding_inputs, seed_input
from .sockets import model_input, negative_input, positive_input, tokens_output


class Sampler(SamplingNode):
    NAME = "Autoregressive Sampler"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return adapter.schema(
            "GPTImgSampler",
            display_name=cls.NAME,
            category="gptimg/sampling",
            description="Generates image tokens row by row with the GPT (classifier-free guidance, temperature, "
            "top-k/top-p; optionally the likeliest of several draws per image). Connect a VQ to see live previews; "
            "decode the tokens with VQ Decode.",
            inputs=[
                model_input(),
                positive_input(),
                negative_input(),
                io.Custom(VQ).Input(
                    "vq", optional=True, tooltip="Optional: the VQ tokenizer, for live previews while sampling."
                ),
                seed_input(),
                io.Int.Input("batch_size", default=1, min=1, max=64, tooltip="How many images to generate at once."),
                sampling_part.cfg_input(),
                io.Int.Input(
                    "cfg_interval",
                    default=-1,
                    min=-1,
                    max=4096,
                    tooltip="Use guidance for this many tokens only, then the conditional model alone; -1 = all.",
                ),
                io.Combo.Input(
                    "cfg_schedule",
                    options=["constant", "linear"],
                    default="constant",
                    tooltip="constant: the same scale for every token; linear: grows from 1 to cfg over the image.",
                ),
                sampling_part.temperature_input(),
                sampling_part.top_k_input(),
                sampling_part.top_p_input(),
                best_of_input(),
                *decoding_inputs(),
            ],
            outputs=[tokens_output("The generated image tokens; decode them with VQ Decode.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(
        cls,
        cfg_schedule: str,
        cfg: float | None,
        temperature: float | None,
        top_k: int | None,
        top_p: float | None,
        candidates: int | None = None,
        decoding: str | None = None,
        window: int | None = None,
    ) -> bool | str:
        return check_widgets(
            cls, FLOORS, cfg_schedule=cfg_schedule, cfg=cfg, temperature=temperature, top_k=top_k, top_p=top_p,
            candidates=candidates, decoding=decoding, window=window,
        )  # fmt: skip

    @classmethod
    def execute(
        cls,
        model: GPTImgModel,
        positive: GPTImgCond,
        seed: int,
        batch_size: int,
        cfg: float,
        cfg_interval: int,
        cfg_schedule: str,
        temperature: float,
        top_k: int,
        top_p: float,
        negative: GPTImgCond | None = None,
        vq: GPTImgVQ | None = None,
        candidates: int = 1,
        decoding: str = "ar",
        window: int = WINDOW,
    ) -> io.NodeOutput:
        chosen = Chosen(seed, cfg, temperature, top_k, top_p, decoding, window).core_kwargs()
        codes = sampling_part.run(
            cls, model, positive, negative, batch_size, generate, task="sample", vq=vq, cfg_interval=cfg_interval,
            cfg_schedule=cfg_schedule, best_of=auto_count(candidates), **chosen,
        )  # fmt: skip
        tokens = GPTImgTokens(
            codes,
            model.gpt.vocab_size,
            vq.vq_id if vq is not None else None,
            vq.downsample if vq is not None else None,
        )
        return io.NodeOutput(tokens)
