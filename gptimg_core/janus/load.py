"""Loading the parts of a Janus folder that image generation needs, each built from transformers' classes on
the meta device and filled with only its own tensors (nothing random-initialised, nothing read twice).

load_gpt reads the language model and the generation embeddings/aligner/head; load_vq the VQ; load_text_encoder
the tokenizer and chat template. The understanding encoder (SigLIP vision_model + aligner) and the text head
(lm_head) are never read: README, Janus-Pro, for what that saves.
"""

from __future__ import annotations

import logging
import os
import time

import torch

from ..sampling import SamplingOptions
from ..settings import Recommended
from .folder import (
    JanusFolderError,
    assign_strict,
    check_folder,
    read_config,
    read_generation_config,
    read_tensors,
)
from .model import GENERATION_PREFIXES, JanusModel
from .prompt import JanusPromptEncoder, load_prompt_encoder
from .vq import JanusVQ

log = logging.getLogger(__name__)

# transformers' GenerationConfig global default for sampling, used when generation_config.json sets none.
DEFAULT_TOP_K = 50


def _no_meta(module: torch.nn.Module, where: str, folder: os.PathLike) -> None:
    left = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if left:
        raise JanusFolderError(f"{where}: {str(folder)!r} did not provide {left[:4]} (the model cannot run without)")


def load_janus_model(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    n_head: int | None = None,
    grid: int | None = None,
) -> JanusModel:
    """The image generator of a Janus folder (JanusModel, a TokenModel), in eval mode. n_head and grid come from
    config.json; given ones must agree with it (load_gpt passes its own through)."""
    where = "load_gpt"
    folder = check_folder(path, where)
    t0 = time.perf_counter()
    config = read_config(folder)
    gen = read_generation_config(folder, where)
    tokens = int(config.vision_config.num_image_tokens)
    side = int(round(tokens**0.5))
    if side * side != tokens or side != config.vq_config.num_patches:
        raise JanusFolderError(
            f"{where}: config.json of {str(folder)!r} asks for {tokens} image tokens but its VQ decodes a "
            f"{config.vq_config.num_patches}x{config.vq_config.num_patches} grid; the config is inconsistent."
        )
    heads = int(config.text_config.num_attention_heads)
    if (n_head and n_head != heads) or (grid and grid != side):
        raise JanusFolderError(
            f"{where}: {str(folder)!r} is a Janus folder with {heads} heads and a {side}x{side} grid (its config.json), "
            f"but n_head={n_head} and grid={grid} were asked for; leave them unset"
        )
    sample = SamplingOptions(
        cfg_scale=float(gen.guidance_scale or 5.0), temperature=float(gen.temperature or 1.0),
        top_k=int(gen.top_k if gen.top_k is not None else DEFAULT_TOP_K), top_p=float(gen.top_p or 1.0),
    )  # fmt: skip
    recommended = Recommended(sample)
    ids = dict(
        pad_id=int(gen.pad_token_id), bos_id=int(gen.bos_token_id), boi_id=int(gen.generation_kwargs["boi_token_id"])
    )
    with torch.device("meta"):
        model = JanusModel(config, **ids, recommended=recommended)
    sd = read_tensors(folder, GENERATION_PREFIXES, "model.", dtype, where)
    assign_strict(model, sd, where, folder, "model.")
    # RoPE's inverse frequencies are a computed (non-persistent) buffer: build them for real, in fp32.
    model.language_model.rotary_emb = type(model.language_model.rotary_emb)(config=config.text_config)
    _no_meta(model, where, folder)
    model = model.eval().to(device)
    log.info(
        "loaded Janus generator from %s (%.0fM parameters, %s, %dx%d grid) in %.2fs", folder,
        sum(p.numel() for p in model.parameters()) / 1e6, dtype, side, side, time.perf_counter() - t0,
    )  # fmt: skip
    return model


def load_janus_vq(
    path: str | os.PathLike, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> JanusVQ:
    """The VQ-16 tokenizer of a Janus folder (JanusVQ), in eval mode."""
    from transformers import JanusVQVAE

    where = "load_vq"
    folder = check_folder(path, where)
    config = read_config(folder)
    with torch.device("meta"):
        vqvae = JanusVQVAE(config.vq_config)
    sd = read_tensors(folder, ("model.vqmodel.",), "model.vqmodel.", dtype, where)
    assign_strict(vqvae, sd, where, folder, "model.vqmodel.")
    _no_meta(vqvae, where, folder)
    return JanusVQ(vqvae).eval().to(device)


def load_janus_prompt_encoder(path: str | os.PathLike) -> JanusPromptEncoder:
    """The prompt encoder (tokenizer + chat template) of a Janus folder."""
    where = "load_text_encoder"
    folder = check_folder(path, where)
    gen = read_generation_config(folder, where)
    return load_prompt_encoder(folder, int(gen.generation_kwargs["boi_token_id"]), int(gen.pad_token_id), where)
