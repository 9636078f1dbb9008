"""The one module that touches ComfyUI internals: model folders, devices and model management,
the progress bar with live previews, interrupts, and websocket events."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from types import TracebackType

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths
import torch
from comfy.cli_args import args
from comfy_api.v0_0_2 import io
from PIL import Image
from server import PromptServer
from torch import Tensor

from ..gptimg_core.preview import (
    MAX_TILED,
    PreviewScheduler,
    every_rows_for,
    preview_cell,
    render_decoded,
    render_palette,
    tile,
)
from .objects import GPTImgVQ

log = logging.getLogger(__name__)

GPT_FOLDER = "gptimg"  # GPT checkpoints (and T5 folders, if users keep them together)
VQ_FOLDER = "gptimg_vq"
TEXT_ENCODER_FOLDER = "text_encoders"  # ComfyUI's own folder; we list the T5 *folders* in it
CHECKPOINT_SUFFIXES = frozenset({".pt", ".pth", ".bin", ".safetensors"})
STATS_EVENT = "gptimg.sampling_stats"
BAR_INTERVAL_S = 0.1  # progress bar updates without a preview: at most 10 per second
STATS_INTERVAL_S = 0.25


# ---- node schemas --------------------------------------------------------------------------------

# What users type in the node search for each node (the display name and category are searched anyway).
SEARCH_ALIASES: dict[str, list[str]] = {
    "GPTImgLoadModel": ["llamagen", "autoregressive", "gpt image", "load checkpoint", "t2i", "c2i"],
    "GPTImgLoadVQ": ["vq", "vqgan", "image tokenizer", "llamagen", "load vae"],
    "GPTImgLoadTextEncoder": ["t5", "flan-t5", "text encoder", "llamagen", "load clip"],
    "GPTImgEncodePrompt": ["prompt", "text encode", "t5", "clip text encode", "llamagen"],
    "GPTImgClassLabel": ["class", "imagenet", "label", "c2i", "llamagen"],
    "GPTImgSampler": ["llamagen", "autoregressive", "ksampler", "generate", "next token", "vq"],
    "GPTImgVQEncode": ["vq", "tokenize", "vae encode", "image to tokens"],
    "GPTImgVQDecode": ["vq", "detokenize", "vae decode", "tokens to image"],
    "GPTImgTokenInpaint": ["inpaint", "fill", "repaint", "mask", "autoregressive", "vq"],
    "GPTImgOutpaint": ["outpaint", "extend", "expand canvas", "uncrop", "inpaint"],
    "GPTImgVariations": ["variation", "resample", "reroll", "autoregressive"],
    "GPTImgImg2Img": ["img2img", "image to image", "denoise", "strength", "autoregressive"],
    "GPTImgTokenMaskPreview": ["mask preview", "inpaint", "token grid", "vq"],
}
# ComfyUI 0.3.75's io.Schema has no search_aliases field (later versions do): pass them only where it exists.
TAKES_SEARCH_ALIASES = "search_aliases" in getattr(io.Schema, "__dataclass_fields__", {})


def schema(node_id: str, **fields) -> io.Schema:
    """io.Schema of a node, with its SEARCH_ALIASES where this ComfyUI's schema takes them."""
    if TAKES_SEARCH_ALIASES:
        fields.setdefault("search_aliases", SEARCH_ALIASES.get(node_id, []))
    return io.Schema(node_id=node_id, **fields)


# ---- folders ---------------------------------------------------------------------------------------


def register_folders() -> None:
    """Register our model folders under ComfyUI's models dir, adding to (never replacing) what
    extra_model_paths.yaml already registered."""
    for name in (GPT_FOLDER, VQ_FOLDER):
        default = os.path.join(folder_paths.models_dir, name)
        if name in folder_paths.folder_names_and_paths:
            folder_paths.add_model_folder_path(name, default)
        else:
            folder_paths.folder_names_and_paths[name] = ([default], set(CHECKPOINT_SUFFIXES))


def _in_model_folder(full: Path, depth: int) -> bool:
    """Whether a file lies inside a Hugging Face model folder (one holding config.json) below its root."""
    return any((parent / "config.json").is_file() for parent in list(full.parents)[: depth - 1])


def checkpoint_files(folder: str) -> list[str]:
    """Checkpoint files in a registered folder, as ComfyUI names them, without the files of T5 folders."""
    out = []
    for rel in folder_paths.get_filename_list(folder):
        if Path(rel).suffix.lower() not in CHECKPOINT_SUFFIXES:
            continue
        full = folder_paths.get_full_path(folder, rel)
        if full is not None and not _in_model_folder(Path(full), len(Path(rel).parts)):
            out.append(rel)
    return out


def folder_paths_of(folder: str) -> list[str]:
    """The directories registered under a model folder name (none if it is not registered)."""
    return list(folder_paths.get_folder_paths(folder)) if folder in folder_paths.folder_names_and_paths else []


def checkpoint_path(folder: str, name: str) -> Path:
    """Full path of a file chosen in a combo (FileNotFoundError naming the folder if it is gone)."""
    return Path(folder_paths.get_full_path_or_raise(folder, name))


def _model_type(config: Path) -> str | None:
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):  # unreadable or not a JSON object: no model folder
        return None


def _is_t5_folder(config: Path) -> bool:
    return _model_type(config) == "t5"


def _hf_folders(roots: list[Path], model_types: tuple[str, ...]) -> dict[str, Path]:
    """Folders up to two levels below roots whose config.json has one of model_types: {name: path}; the first
    root wins a name."""
    found: dict[str, Path] = {}
    for root in roots:
        for config in sorted(root.glob("*/config.json")) + sorted(root.glob("*/*/config.json")):
            name = config.parent.relative_to(root).as_posix()
            if name not in found and _model_type(config) in model_types:
                found[name] = config.parent
    return found


def janus_folders() -> dict[str, Path]:
    """Hugging Face Janus-Pro folders (config.json model_type "janus") up to two levels below models/gptimg."""
    roots = (
        [Path(p) for p in folder_paths.get_folder_paths(GPT_FOLDER)]
        if GPT_FOLDER in folder_paths.folder_names_and_paths
        else []
    )
    return _hf_folders(roots, ("janus",))


def _text_encoder_roots() -> list[Path]:
    roots = []
    for folder in (TEXT_ENCODER_FOLDER, GPT_FOLDER):
        if folder in folder_paths.folder_names_and_paths:
            roots += [Path(p) for p in folder_paths.get_folder_paths(folder)]
    return roots


def text_encoder_folders() -> dict[str, Path]:
    """T5 folders and Janus folders (config.json model_type "t5" or "janus": a Janus folder holds its own
    tokenizer) up to two levels below the text_encoders and gptimg folders: {name relative to its root: path};
    the first root wins a name."""
    return _hf_folders(_text_encoder_roots(), ("t5", "janus"))


# ---- devices and model management ------------------------------------------------------------------


def _devices(role: str) -> tuple[torch.device, torch.device]:
    if role == "gpt":
        return mm.get_torch_device(), mm.unet_offload_device()
    if role == "vq":
        return mm.vae_device(), mm.vae_offload_device()
    if role == "text_encoder":
        return mm.text_encoder_device(), mm.text_encoder_offload_device()
    raise ValueError(f"comfy_adapter: unknown model role {role!r}")


def auto_dtype(role: str) -> torch.dtype:
    """bf16 where the compute device supports it well, else fp16 (GPT only) where it does, else fp32."""
    device = _devices(role)[0]
    if mm.should_use_bf16(device):
        return torch.bfloat16
    if role == "gpt" and mm.should_use_fp16(device):
        return torch.float16
    return torch.float32


class _Holder(torch.nn.Module):
    """Holds a core model for ModelPatcher, which keeps its bookkeeping attributes on the module it
    is given (and sets `.device`, which a transformers model cannot take)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner


# ComfyUI logs "Requested to load <class name>": name the holders after what they hold
_HOLDERS = {role: type(f"GPTImg_{role}", (_Holder,), {}) for role in ("gpt", "vq", "text_encoder")}


class Managed:
    """A core model under ComfyUI's model management: loaded onto the compute device by `ready()`,
    offloaded when ComfyUI needs the memory or unloads models, freed with this object."""

    def __init__(self, module: torch.nn.Module, role: str) -> None:
        load, offload = _devices(role)
        self.role = role
        holder = _HOLDERS[role](module)
        self.patcher = comfy.model_patcher.ModelPatcher(holder, load_device=load, offload_device=offload)

    def describe_device(self) -> str:
        load, offload = self.patcher.load_device, self.patcher.offload_device
        return f"runs on {load}" + (f", offloaded to {offload} when idle" if load != offload else "")


def ready(*models: Managed) -> None:
    """Put these models on their compute device, together (so loading one does not evict another)."""
    mm.load_models_gpu([m.patcher for m in models], force_full_load=True)


def intermediate_device() -> torch.device:
    """Where tensors passed between nodes live (the CPU unless ComfyUI says otherwise)."""
    return mm.intermediate_device()


# ---- progress, previews, interrupt, events ---------------------------------------------------------


def send_event(event: str, data: dict) -> None:
    """A websocket event to the client that queued the prompt; nothing when no server runs (ComfyUI
    used as a library)."""
    server = getattr(PromptServer, "instance", None)
    if server is not None:
        server.send_sync(event, data, server.client_id)


class SamplingProgress:
    """The core's per-token callback inside ComfyUI.

    At every token: raise InterruptProcessingException if the user interrupted (ComfyUI's check).
    Progress bar: at most every BAR_INTERVAL_S, with a live preview when a VQ is given (palette map
    or real decode, as the PreviewScheduler allows within 10% of the sampling time); at the last token
    (the tokens the node returns) always the finished image, decoded, whatever the budget. Websocket
    event STATS_EVENT {node, done, total, tokens_per_s, eta_s, finished, settings}: every STATS_INTERVAL_S and
    at the end. Use as a context manager so the final event is sent however sampling ends.
    """

    def __init__(
        self, node_id: str | None, total: int, grid: tuple[int, int], vq: GPTImgVQ | None = None, settings: str = ""
    ) -> None:
        self.node_id, self.total, self.grid, self.vq, self.settings = node_id, total, grid, vq, settings
        self.bar = comfy.utils.ProgressBar(total, node_id=node_id)
        self.start = time.perf_counter()
        self.last_bar = self.last_stats = -1.0
        self.done = 0
        self.scheduler: PreviewScheduler | None = None
        self.cell = 1

    def __call__(self, step: int, total: int, tokens: Tensor) -> None:
        mm.throw_exception_if_processing_interrupted()
        self.done, self.total = step, total
        if self.vq is not None and self.scheduler is None:
            self._start_previews(tokens.shape[0])
        now = time.perf_counter()
        kind = self.scheduler.due(step) if self.scheduler is not None else None
        if step >= total and self.vq is not None:  # the finished image, so the last preview is never stale
            self.bar.update_absolute(step, total, ("JPEG", self._render("final", tokens), args.preview_size))
            self.last_bar = now
        elif kind is not None:
            with self.scheduler.measure(kind):
                self.bar.update_absolute(step, total, ("JPEG", self._render(kind, tokens), args.preview_size))
            self.last_bar = now
        elif step >= total or now - self.last_bar >= BAR_INTERVAL_S:
            self.bar.update_absolute(step, total)
            self.last_bar = now
        if step < total and now - self.last_stats >= STATS_INTERVAL_S:
            self._send_stats(finished=False)
            self.last_stats = now

    def _start_previews(self, batch: int) -> None:
        h, w = self.grid
        shown = min(batch, MAX_TILED)
        self.cell = preview_cell(self.grid, self.vq.downsample, shown)
        pixels = shown * h * w * self.cell**2
        pmap = self.vq.preview
        palette = pmap.palette_estimate(pixels)
        estimates = {"decode": pmap.decode_estimate(shown * h * w) + palette, "palette": palette}
        self.scheduler = PreviewScheduler(self.total, w, estimates, every_rows=every_rows_for(h))

    def _render(self, kind: str, tokens: Tensor) -> Image.Image:
        """A tiled preview of the first MAX_TILED images: "decode" or "final" (a real VQ decode), or "palette"."""
        shown = tokens[:MAX_TILED]
        if kind in ("decode", "final"):
            images = render_decoded(self.vq.vq, self.vq.preview, shown, self.grid, self.cell)
        else:
            images = render_palette(self.vq.preview, shown, self.grid, self.cell)
        return Image.fromarray(tile(images))

    def _send_stats(self, finished: bool) -> None:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        send_event(
            STATS_EVENT,
            {
                "node": str(self.node_id),
                "done": int(self.done),
                "total": int(self.total),
                "tokens_per_s": round(rate, 2),
                "eta_s": round(eta, 2),
                "finished": finished,
                "settings": self.settings,
            },
        )

    def __enter__(self) -> SamplingProgress:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._send_stats(finished=True)  # also after an interrupt or error, which then propagates
        if self.scheduler is not None:
            stats = self.scheduler.stats()
            log.debug(
                "gptimg previews: %.1f%% of %.2f s sampling (%s)",
                100 * stats["ratio"],
                stats["sampling_s"],
                ", ".join(f"{k} {v}" for k, v in stats.items() if k.endswith(("_previews", "skipped"))),
                extra={"gptimg_previews": stats},
            )
