"""Conditioning nodes: a text prompt (t2i models) or a class label (c2i models) -> GPTIMG_COND."""

from __future__ import annotations

import torch
from comfy_api.v0_0_2 import io

from ..gptimg_core.labels import resolve_class
from . import comfy_adapter as adapter
from .checks import NodeInputError, core_errors
from .objects import COND, TEXT_ENCODER, GPTImgCond, GPTImgModel, GPTImgTextEncoder
from .sockets import model_input


class EncodePrompt(io.ComfyNode):
    NAME = "Encode Prompt"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return adapter.schema(
            node_id="GPTImgEncodePrompt",
            display_name=cls.NAME,
            category="gptimg/conditioning",
            description="Encodes a prompt (and an optional negative prompt) with T5 for a text-to-image GPT, or "
            "with a Janus-Pro folder's tokenizer and chat template for Janus-Pro.",
            inputs=[
                io.Custom(TEXT_ENCODER).Input("text_encoder", tooltip="The T5 encoder (from Load Text Encoder)."),
                model_input(),
                io.String.Input(
                    "prompt", multiline=True, default="", tooltip="What the image should show, in plain words."
                ),
                io.String.Input(
                    "negative_prompt",
                    multiline=True,
                    default="",
                    optional=True,
                    tooltip="What guidance should steer away from; empty = the model's own null condition.",
                ),
            ],
            outputs=[io.Custom(COND).Output(display_name="cond", tooltip="The encoded prompt for the sampler.")],
        )

    @classmethod
    def execute(
        cls, text_encoder: GPTImgTextEncoder, model: GPTImgModel, prompt: str, negative_prompt: str = ""
    ) -> io.NodeOutput:
        if model.gpt.kind != "t2i":
            raise NodeInputError(
                cls.NAME, "model", "is a class-to-image (c2i) model; condition it with Class Label instead"
            )
        if not prompt.strip():
            raise NodeInputError(
                cls.NAME, "prompt", "is empty; this is a text-to-image model: describe the image to generate"
            )
        with core_errors(cls.NAME, "text_encoder"):
            enc = text_encoder.encoder.for_model(model.gpt, cls.NAME)
        adapter.ready(text_encoder.managed)
        out = adapter.intermediate_device()
        with core_errors(cls.NAME, "prompt"):
            cond, mask = enc.encode([prompt])
            uncond = uncond_mask = None
            if negative_prompt.strip():
                uncond, uncond_mask = enc.encode([negative_prompt])
                uncond, uncond_mask = uncond.to(out), uncond_mask.to(out)
        return io.NodeOutput(GPTImgCond("t2i", cond.to(out), mask.to(out), uncond, uncond_mask, prompt))


class ClassLabel(io.ComfyNode):
    NAME = "Class Label"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return adapter.schema(
            node_id="GPTImgClassLabel",
            display_name=cls.NAME,
            category="gptimg/conditioning",
            description="A class of a class-to-image GPT, by id or by name (the model's own names, or ImageNet's "
            "for 1000-class models).",
            inputs=[
                model_input(),
                io.String.Input(
                    "class",
                    default="0",
                    tooltip="Class id (e.g. 207) or name (e.g. golden retriever; built-in model: e.g. red circle).",
                ),
            ],
            outputs=[io.Custom(COND).Output(display_name="cond", tooltip="The class condition for the sampler.")],
        )

    @classmethod
    def execute(cls, model: GPTImgModel, **inputs: str) -> io.NodeOutput:
        text = inputs["class"]  # "class" is a Python keyword, so it arrives through **inputs
        if model.gpt.kind != "c2i":
            raise NodeInputError(
                cls.NAME, "model", "is a text-to-image (t2i) model; condition it with Encode Prompt instead"
            )
        label = resolve_class(text, model.class_names, model.gpt.num_classes, where=f"{cls.NAME}: class")
        name = model.class_names[label] if model.class_names else str(label)
        return io.NodeOutput(GPTImgCond("c2i", torch.tensor([label], dtype=torch.long), text=name))
