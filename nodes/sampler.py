"""The autoregressive sampler node: condition -> image tokens, one token at a time, with live previews."""

from __future__ import annotations

from comfy_api.latest import io

from ..gptimg_core import generate
from . import comfy_adapter as adapter
from .common import (
    candidates_input,
    cfg_input,
    check_condition,
    check_vq_fits,
    check_widgets,
    core_errors,
    generator,
    model_input,
    negative_input,
    positive_input,
    seed_input,
    temperature_input,
    tokens_output,
    top_k_input,
    top_p_input,
)
from .types import VQ, GPTImgCond, GPTImgModel, GPTImgTokens, GPTImgVQ, condition_kwargs


class Sampler(io.ComfyNode):
    NAME = "Autoregressive Sampler"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="GPTImgSampler",
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
                cfg_input(),
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
                temperature_input(),
                top_k_input(),
                top_p_input(),
                candidates_input(),
            ],
            outputs=[tokens_output("The generated image tokens; decode them with VQ Decode.")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(
        cls, cfg_schedule: str, cfg: float | None, temperature: float | None, top_p: float | None
    ) -> bool | str:
        return check_widgets(cls, cfg_schedule=cfg_schedule, cfg=cfg, temperature=temperature, top_p=top_p)

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
    ) -> io.NodeOutput:
        check_condition(cls.NAME, "positive", model, positive)
        if negative is not None:
            check_condition(cls.NAME, "negative", model, negative)
        if vq is not None:
            check_vq_fits(cls.NAME, "vq", model, vq)
        adapter.ready(model.managed, *([vq.managed] if vq is not None else []))
        g = model.cfg.grid
        with adapter.SamplingProgress(cls.hidden.unique_id, model.cfg.block_size, (g, g), vq) as progress:
            with core_errors(cls.NAME, "sampling settings"):
                codes = generate(
                    model.gpt,
                    **condition_kwargs(positive, negative, batch_size),
                    cfg_scale=cfg,
                    cfg_interval=cfg_interval,
                    cfg_schedule=cfg_schedule,
                    temperature=temperature,
                    top_k=top_k,
                    top_p=top_p,
                    candidates=candidates,
                    generator=generator(seed),
                    callback=progress,
                )
        tokens = GPTImgTokens(
            codes.cpu(),
            model.cfg.vocab_size,
            vq.vq_id if vq is not None else None,
            vq.downsample if vq is not None else None,
        )
        return io.NodeOutput(tokens)
