"""Loader nodes: GPT image model, VQ tokenizer, T5 text encoder (files from ComfyUI's model folders, or the built-in model)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from comfy_api.v0_0_2 import io, ui

from ..gptimg_core import builtin_path, load_gpt, load_text_encoder, load_vq
from ..gptimg_core.checkpoint import DTYPES, GPT_DTYPES, VQ_DTYPES
from ..gptimg_core.labels import class_names_for, stored_class_names
from ..gptimg_core.preview import fit_preview_map
from . import comfy_adapter as adapter
from .checks import NodeInputError, check_widgets, core_errors
from .objects import MODEL, TEXT_ENCODER, VQ, GPTImgModel, GPTImgTextEncoder, GPTImgVQ

BUILTIN = "builtin"
BUILTIN_GPT = {"builtin t2i": "t2i", "builtin c2i": "c2i"}


def _path(node: str, name: str, value: str, builtin: dict[str, str], folder: str) -> Path:
    janus = adapter.janus_folders()
    if value in janus:  # a Janus-Pro folder in models/gptimg (its GPT, VQ and tokenizer together)
        return janus[value]
    try:
        return builtin_path(builtin[value]) if value in builtin else adapter.checkpoint_path(folder, value)
    except FileNotFoundError as e:
        raise NodeInputError(
            node, name, f"{str(e).rstrip('.')}; refresh the node list (R) and pick an existing file"
        ) from e


def _listed(node: type[io.ComfyNode], name: str) -> list[str]:
    """What the node's dropdown `name` lists now (its schema is the one source of the choices)."""
    return next(list(i.options) for i in node.define_schema().inputs if i.id == name)


def _missing(node: type[io.ComfyNode], name: str, value: str, choices: list[str], folders: list[str], what: str) -> str:
    """validate_inputs answer for a file or folder not in the list (a shared workflow names one this ComfyUI
    lacks): where under ComfyUI/models/ it belongs, the folders searched here, and what to do."""
    where = " or ".join(f"ComfyUI/models/{f}/" for f in folders)
    searched = [p for f in folders for p in adapter.folder_paths_of(f)]
    found = [c for c in choices if c != BUILTIN and c not in BUILTIN_GPT]
    shown = ", ".join(repr(c) for c in found[:8]) + (", …" if len(found) > 8 else "") if found else "none"
    return (
        f"{node.NAME}: {name}: {value!r} is not here: put the {what} in {where} (searched: "
        f"{', '.join(searched) or 'no folder registered'}), then refresh the node list (R) or pick one that is "
        f"(found: {shown})"
    )


def _stamp(path: Path) -> str:
    """Changes when the file (a folder: its config.json) does (ComfyUI reloads instead of reusing the cached model)."""
    if path.is_dir():
        path = path / "config.json"
    try:
        return f"{path}:{os.stat(path).st_mtime_ns}"
    except OSError:
        return f"{path}:missing"


class LoadModel(io.ComfyNode):
    NAME = "Load GPT Image Model"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return adapter.schema(
            node_id="GPTImgLoadModel",
            display_name=cls.NAME,
            category="gptimg/loaders",
            description="Loads a LlamaGen GPT image model (.pt/.pth/.bin or .safetensors from models/gptimg), a "
            "Janus-Pro folder (Hugging Face format, in models/gptimg) or the built-in shapes model. Never downloads "
            "anything.",
            inputs=[
                io.Combo.Input(
                    "ckpt_name",
                    options=[*BUILTIN_GPT, *adapter.checkpoint_files(adapter.GPT_FOLDER), *adapter.janus_folders()],
                    default="builtin t2i",
                    tooltip="GPT checkpoint in models/gptimg (e.g. LlamaGen's t2i_XL_stage1_256.pt or c2i_L_384.pt), "
                    "a Janus-Pro folder there (e.g. Janus-Pro-1B), or the built-in text-to-image / class-to-image "
                    "model.",
                ),
                io.Combo.Input(
                    "dtype",
                    options=["auto", *GPT_DTYPES],
                    default="auto",
                    tooltip="Weights precision; auto: bf16 (or fp16) on GPUs that support it, fp32 on the CPU. int8: "
                    "int8 weights with bf16 activations, for CPUs with native bf16 (its price: README, Performance).",
                ),
                io.Int.Input(
                    "n_head",
                    default=0,
                    min=0,
                    max=256,
                    tooltip="Attention heads; 0 = from the file, or the LlamaGen preset of the model's size.",
                ),
                io.Int.Input(
                    "grid",
                    default=0,
                    min=0,
                    max=64,
                    tooltip="Token grid side (16 for 256px with VQ-16, 24 for 384px); 0 = from the file, its official "
                    "name, or 16.",
                ),
                io.Boolean.Input(
                    "compile",
                    default=False,
                    optional=True,  # workflows saved before this input existed still load and run uncompiled
                    tooltip="torch.compile a LlamaGen GPT's decode steps on the CPU: faster steps after a compile of "
                    "seconds to a minute in the first generation (README, Performance). Needs a C++ compiler (g++); no "
                    "effect on a GPU.",
                ),
            ],
            outputs=[io.Custom(MODEL).Output(display_name="model", tooltip="The loaded GPT image model.")],
        )

    @classmethod
    def fingerprint_inputs(cls, ckpt_name: str, dtype: str, n_head: int, grid: int, compile: bool = False) -> str:
        return _stamp(_path(cls.NAME, "ckpt_name", ckpt_name, BUILTIN_GPT, adapter.GPT_FOLDER))

    @classmethod
    def validate_inputs(cls, ckpt_name: str) -> bool | str:
        # one input per validate_inputs: ComfyUI files the answer under every input it names; dtype is checked below
        choices = _listed(cls, "ckpt_name")
        if ckpt_name not in choices:
            return _missing(cls, "ckpt_name", ckpt_name, choices, [adapter.GPT_FOLDER], "GPT checkpoint")
        return check_widgets(cls, ckpt_name=ckpt_name)

    @classmethod
    def execute(cls, ckpt_name: str, dtype: str, n_head: int, grid: int, compile: bool = False) -> io.NodeOutput:
        path = _path(cls.NAME, "ckpt_name", ckpt_name, BUILTIN_GPT, adapter.GPT_FOLDER)
        if dtype != "auto" and dtype not in GPT_DTYPES:
            raise NodeInputError(cls.NAME, "dtype", f"{dtype!r} is not one of auto, {', '.join(GPT_DTYPES)}")
        if not isinstance(compile, bool):
            raise NodeInputError(cls.NAME, "compile", f"{compile!r} is not true or false")
        if compile and os.path.isdir(path):
            raise NodeInputError(cls.NAME, "compile", f"{ckpt_name} is a folder; compile is for LlamaGen GPT files")
        torch_dtype = "int8" if dtype == "int8" else DTYPES.get(dtype) or adapter.auto_dtype("gpt")
        with core_errors(cls.NAME, "ckpt_name"):
            gpt = load_gpt(path, dtype=torch_dtype, n_head=n_head or None, grid=grid or None, compile=compile)
            names = class_names_for(gpt.cfg.num_classes, stored_class_names(path)) if gpt.kind == "c2i" else None
        model = GPTImgModel(gpt, adapter.Managed(gpt, "gpt"), ckpt_name, names)
        return io.NodeOutput(model, ui=ui.PreviewText(model.summary()))


def vq_id(vq: torch.nn.Module) -> str:
    """Content id of a VQ: a hash of its codebook (the same file loaded twice gets the same id)."""
    book = vq.quantize.embedding.weight.detach().float().cpu().contiguous()
    return hashlib.sha256(book.numpy().tobytes()).hexdigest()[:16]


class LoadVQ(io.ComfyNode):
    NAME = "Load VQ Tokenizer"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return adapter.schema(
            node_id="GPTImgLoadVQ",
            display_name=cls.NAME,
            category="gptimg/loaders",
            description="Loads a LlamaGen VQ image tokenizer (models/gptimg_vq), the VQ of a Janus-Pro folder "
            "(models/gptimg) or the built-in one, and fits its cheap live-preview colours.",
            inputs=[
                io.Combo.Input(
                    "vq_name",
                    options=[BUILTIN, *adapter.checkpoint_files(adapter.VQ_FOLDER), *adapter.janus_folders()],
                    default=BUILTIN,
                    tooltip="VQ checkpoint in models/gptimg_vq (e.g. LlamaGen's vq_ds16_t2i.pt or vq_ds16_c2i.pt), "
                    "a Janus-Pro folder in models/gptimg (its VQ), or the built-in one.",
                ),
                io.Combo.Input(
                    "dtype",
                    options=list(VQ_DTYPES),
                    default="fp32",
                    optional=True,  # workflows saved before this input existed still load and run as fp32
                    tooltip="fp32: exact. bf16: faster encode/decode on a CPU with native bf16 or a GPU; pixels change "
                    "slightly (README, VQ decode).",
                ),
            ],
            outputs=[io.Custom(VQ).Output(display_name="vq", tooltip="The loaded VQ tokenizer (pixels <-> tokens).")],
        )

    @classmethod
    def fingerprint_inputs(cls, vq_name: str, dtype: str = "fp32") -> str:
        return _stamp(_path(cls.NAME, "vq_name", vq_name, {BUILTIN: "vq"}, adapter.VQ_FOLDER))

    @classmethod
    def validate_inputs(cls, vq_name: str) -> bool | str:
        # as Load Model: one input here (ComfyUI files the answer under every input named); dtype is checked below
        choices = _listed(cls, "vq_name")
        if vq_name not in choices:
            return _missing(cls, "vq_name", vq_name, choices, [adapter.VQ_FOLDER], "VQ tokenizer file")
        return check_widgets(cls, vq_name=vq_name)

    @classmethod
    def execute(cls, vq_name: str, dtype: str = "fp32") -> io.NodeOutput:
        path = _path(cls.NAME, "vq_name", vq_name, {BUILTIN: "vq"}, adapter.VQ_FOLDER)
        if dtype not in VQ_DTYPES:
            raise NodeInputError(cls.NAME, "dtype", f"{dtype!r} is not one of {', '.join(VQ_DTYPES)}")
        with core_errors(cls.NAME, "vq_name"):
            vq = load_vq(path, dtype=dtype)
        managed = adapter.Managed(vq, "vq")
        adapter.ready(managed)
        out = GPTImgVQ(vq, managed, vq_name, vq_id(vq), fit_preview_map(vq))
        text = (
            f"{vq_name}: VQ-{vq.downsample}, {vq.codebook_size} codes of {vq.quantize.embedding.weight.shape[1]} dims, "
            f"{sum(p.numel() for p in vq.parameters()) / 1e6:.1f}M parameters, {dtype}; {managed.describe_device()}"
        )
        return io.NodeOutput(out, ui=ui.PreviewText(text))


class LoadTextEncoder(io.ComfyNode):
    NAME = "Load Text Encoder"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return adapter.schema(
            node_id="GPTImgLoadTextEncoder",
            display_name=cls.NAME,
            category="gptimg/loaders",
            description="Loads a local T5 encoder folder (config.json, tokenizer, weights) from models/text_encoders "
            "or models/gptimg, the tokenizer of a Janus-Pro folder, or the built-in one. Never downloads anything.",
            inputs=[
                io.Combo.Input(
                    "encoder_name",
                    options=[BUILTIN, *adapter.text_encoder_folders()],
                    default=BUILTIN,
                    tooltip="T5 folder (e.g. flan-t5-xl/ for LlamaGen's t2i models), a Janus-Pro folder (its prompt "
                    "tokenizer and chat template), or the built-in one.",
                )
            ],
            outputs=[
                io.Custom(TEXT_ENCODER).Output(display_name="text_encoder", tooltip="The loaded T5 text encoder.")
            ],
        )

    @classmethod
    def _folder(cls, encoder_name: str) -> Path:
        if encoder_name == BUILTIN:
            return _path(cls.NAME, "encoder_name", encoder_name, {BUILTIN: "text_encoder"}, "")
        folders = adapter.text_encoder_folders()
        if encoder_name not in folders:
            raise NodeInputError(
                cls.NAME,
                "encoder_name",
                f"no T5 folder {encoder_name!r} (nor Janus-Pro folder) in ComfyUI/models/text_encoders/ or "
                f"ComfyUI/models/gptimg/ (found {sorted(folders)}); put the whole model folder there and refresh the "
                "node list (R)",
            )
        return folders[encoder_name]

    @classmethod
    def fingerprint_inputs(cls, encoder_name: str) -> str:
        folder = cls._folder(encoder_name)
        return _stamp(folder / "config.json")

    @classmethod
    def validate_inputs(cls, encoder_name: str) -> bool | str:
        choices = _listed(cls, "encoder_name")
        if encoder_name not in choices:
            folders = [adapter.TEXT_ENCODER_FOLDER, adapter.GPT_FOLDER]
            what = "whole T5 model folder (config.json, tokenizer, weights)"
            return _missing(cls, "encoder_name", encoder_name, choices, folders, what)
        return check_widgets(cls, encoder_name=encoder_name)

    @classmethod
    def execute(cls, encoder_name: str) -> io.NodeOutput:
        folder = cls._folder(encoder_name)
        with core_errors(cls.NAME, "encoder_name"):
            enc = load_text_encoder(folder, dtype=adapter.auto_dtype("text_encoder"))
        managed = adapter.Managed(enc.weights, "text_encoder")
        text = f"{encoder_name}: {enc.describe()}; {managed.describe_device()}"
        return io.NodeOutput(GPTImgTextEncoder(enc, managed, encoder_name), ui=ui.PreviewText(text))
