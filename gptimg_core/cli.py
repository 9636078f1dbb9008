"""Command line: `python -m gptimg_core {generate,inpaint,convert,info,export-onnx}`. Without model paths the
built-in model is used."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .builtin import BUILTIN_INPAINT_SAMPLING, BUILTIN_SAMPLING, builtin_path
from .checkpoint import CheckpointError, convert, detect_kind, load_gpt, load_vq, model_from_state_dict, read_state_dict
from .editing import PARTICLES, inpaint, pixel_mask_to_tokens
from .generate import generate
from .gpt import GPT
from .images import from_uint8, load_image, load_mask, save_png, to_uint8
from .sampling import SamplingOptions
from .text_encoder import TextEncoderError, load_text_encoder


class Progress:
    """A text progress bar on stderr, shown once a run has lasted half a second, redrawn at most 10x/s."""

    def __init__(self, label: str) -> None:
        self.label, self.t0, self.drawn = label, time.perf_counter(), 0.0

    def __call__(self, step: int, total: int, tokens: torch.Tensor) -> None:
        now = time.perf_counter()
        dt = now - self.t0
        if dt < 0.5 or (step < total and now - self.drawn < 0.1):
            return
        self.drawn = now
        bar = "#" * (30 * step // total)
        sys.stderr.write(f"\r{self.label} [{bar:<30}] {step}/{total} tokens, {step / dt:.1f} tok/s")
        if step >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompt", help="text prompt (text-conditional models)")
    p.add_argument("--negative-prompt", default=None, help="text for the null branch of CFG (default: the model's)")
    p.add_argument("--class-id", type=int, default=None, help="class id (class-conditional models)")
    p.add_argument("--seed", type=int, default=0)
    t2i, c2i = BUILTIN_SAMPLING["t2i"], BUILTIN_SAMPLING["c2i"]
    p.add_argument(
        "--cfg",
        type=float,
        default=None,
        help=f"CFG scale (default 4.0; built-in t2i {t2i['cfg_scale']}, c2i {c2i['cfg_scale']}; 1 = off)",
    )
    p.add_argument("--cfg-interval", type=int, default=-1)
    p.add_argument("--cfg-schedule", choices=["constant", "linear"], default="constant")
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help=f"default 1.0 (built-in t2i {t2i['temperature']}, c2i {c2i['temperature']}; "
        f"t2i {BUILTIN_INPAINT_SAMPLING['t2i']['temperature']} to inpaint)",
    )
    p.add_argument("--top-k", type=int, default=None, help=f"0 = off (default 0, built-in models {t2i['top_k']})")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--gpt", help="GPT checkpoint (default: built-in t2i, or c2i with --class-id)")
    p.add_argument("--vq", help="VQ tokenizer checkpoint (default: built-in)")
    p.add_argument("--text-encoder", help="T5 folder (default: built-in)")
    p.add_argument("--n-head", type=int, default=None, help="attention heads, for GPT files of no known preset")
    p.add_argument("--grid", type=int, default=None, help="token grid side (16 for 256px VQ-16, 24 for 384px)")
    p.add_argument("--max-length", type=int, default=None, help="text tokens (default: the GPT's condition length)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="output PNG path (batch > 1 adds -0, -1, …)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m gptimg_core", description=__doc__)
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="prompt or class id -> PNG")
    _sampling_args(g)
    g.add_argument("--batch", type=int, default=1)
    draws = {kind: s["candidates"] for kind, s in BUILTIN_SAMPLING.items()}
    g.add_argument(
        "--candidates",
        type=int,
        default=None,
        help=f"draws per image, the likeliest under the prompt kept (default 1; built-in t2i {draws['t2i']}, "
        f"c2i {draws['c2i']})",
    )
    i = sub.add_parser("inpaint", help="repaint the masked part of an image")
    _sampling_args(i)
    i.add_argument("--image", required=True)
    i.add_argument("--mask", required=True, help="white (or transparent) = repaint")
    i.add_argument("--mask-mode", choices=["any", "threshold"], default="any")
    i.add_argument("--threshold", type=float, default=0.5)
    i.add_argument("--grow", type=int, default=0, help="grow the mask by N tokens")
    i.add_argument(
        "--candidates",
        type=int,
        default=None,
        help="fills run side by side per pass, weighed by the kept tokens after them (particles; default "
        f"{PARTICLES}, built-in t2i {BUILTIN_INPAINT_SAMPLING['t2i']['candidates']})",
    )
    i.add_argument("--passes", type=int, default=1, help="rounds of candidates; the best fill of all rounds is kept")
    c = sub.add_parser("convert", help="checkpoint -> our safetensors with its config")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--n-head", type=int, default=None)
    c.add_argument("--grid", type=int, default=None)
    n = sub.add_parser("info", help="what a checkpoint file is")
    n.add_argument("path")
    x = sub.add_parser("export-onnx", help="GPT (+ VQ) -> ONNX graphs for onnxruntime (--gpt DIR runs them)")
    x.add_argument("--gpt", default=None, help="GPT checkpoint (default: the built-in t2i)")
    x.add_argument("--vq", default=None, help="VQ checkpoint (default: the built-in VQ)")
    x.add_argument("--out", required=True, help="output folder")
    x.add_argument("--dtype", nargs="+", default=["fp32"], choices=["fp32", "fp16"], help="the GPT's precisions")
    x.add_argument("--no-vq", action="store_true", help="export the GPT alone")
    x.add_argument("--n-head", type=int, default=None)
    x.add_argument("--grid", type=int, default=None)
    return ap


def _models(a: argparse.Namespace) -> tuple[GPT, object]:
    part = "c2i" if a.class_id is not None and a.prompt is None else "t2i"
    gpt = load_gpt(a.gpt or builtin_path(part), device=a.device, n_head=a.n_head, grid=a.grid)
    exported = a.gpt is not None and Path(a.gpt).is_dir()  # an ONNX export: its own VQ unless --vq
    vq = load_vq(a.vq or (a.gpt if exported else builtin_path("vq")), device=a.device)
    if vq.codebook_size != gpt.cfg.vocab_size:
        raise SystemExit(f"error: the VQ has {vq.codebook_size} codes but the GPT's vocabulary is {gpt.cfg.vocab_size}")
    return gpt, vq


def _condition(a: argparse.Namespace, gpt: GPT, batch: int) -> dict:
    if gpt.cfg.model_type == "c2i":
        if a.class_id is None:
            raise SystemExit("error: this GPT is class-conditional: pass --class-id")
        return {"cond": torch.full((batch,), a.class_id, dtype=torch.long)}
    if not a.prompt or not a.prompt.strip():
        raise SystemExit("error: this GPT is text-conditional: pass a non-empty --prompt")
    te = load_text_encoder(
        a.text_encoder or builtin_path("text_encoder"), max_length=a.max_length or gpt.cfg.cls_token_num
    )
    te = te.to(a.device)
    feats, mask = te.encode([a.prompt] * batch)
    out = {"cond": feats, "cond_mask": mask}
    if a.negative_prompt:
        out["uncond"], out["uncond_mask"] = te.encode([a.negative_prompt] * batch)
    return out


def _sampling(a: argparse.Namespace, model_type: str, builtin: dict[str, dict[str, float]] = BUILTIN_SAMPLING) -> dict:
    """Sampling settings from the flags; unset ones default to LlamaGen's, or to the built-in model's
    own (`builtin` of that model_type: BUILTIN_SAMPLING, or BUILTIN_INPAINT_SAMPLING) when no --gpt is given."""
    default = builtin[model_type] if a.gpt is None else asdict(SamplingOptions())
    return dict(
        cfg_scale=default["cfg_scale"] if a.cfg is None else a.cfg, cfg_interval=a.cfg_interval,
        cfg_schedule=a.cfg_schedule, temperature=default["temperature"] if a.temperature is None else a.temperature,
        top_k=default["top_k"] if a.top_k is None else a.top_k, top_p=a.top_p,
        generator=torch.Generator().manual_seed(a.seed),
    )  # fmt: skip


def _builtin_or(a: argparse.Namespace, builtin: dict[str, dict[str, float]], gpt: GPT, default: int) -> int:
    """The built-in model's candidates (of builtin, for gpt's model_type) when no --gpt is given, else default."""
    return int(builtin[gpt.cfg.model_type]["candidates"]) if a.gpt is None else default


def _save(images: np.ndarray, out: str) -> list[str]:
    path = Path(out)
    names = (
        [str(path)]
        if len(images) == 1
        else [str(path.with_name(f"{path.stem}-{i}{path.suffix}")) for i in range(len(images))]
    )
    for im, name in zip(images, names, strict=True):
        save_png(im, name)
    return names


def cmd_generate(a: argparse.Namespace) -> None:
    if a.batch < 1:
        raise SystemExit("error: --batch must be >= 1")
    if a.candidates is not None and a.candidates < 1:
        raise SystemExit(f"error: --candidates must be >= 1 (1 = one draw per image), got {a.candidates}")
    gpt, vq = _models(a)
    candidates = a.candidates or _builtin_or(a, BUILTIN_SAMPLING, gpt, 1)
    codes = generate(
        gpt, **_condition(a, gpt, a.batch), **_sampling(a, gpt.cfg.model_type), candidates=candidates,
        callback=Progress("generate"),
    )  # fmt: skip
    for name in _save(to_uint8(vq.decode(codes)), a.out):
        print(name)


def cmd_inpaint(a: argparse.Namespace) -> None:
    if a.candidates is not None and a.candidates < 1:
        raise SystemExit(f"error: --candidates must be >= 1 (1 = one fill), got {a.candidates}")
    gpt, vq = _models(a)
    image, mask = load_image(a.image), load_mask(a.mask)
    if mask.shape != image.shape[:2]:
        raise SystemExit(
            f"error: the mask is {mask.shape[1]}x{mask.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}"
        )
    side = gpt.cfg.grid * vq.downsample
    if image.shape[:2] != (side, side):
        raise SystemExit(
            f"error: the image is {image.shape[1]}x{image.shape[0]}; this model works on {side}x{side} images"
        )
    codes = vq.encode(from_uint8(image))
    redo = pixel_mask_to_tokens(
        torch.from_numpy(mask), vq.downsample, mode=a.mask_mode, threshold=a.threshold, grow=a.grow
    )
    out = inpaint(
        gpt, codes, ~redo, **_condition(a, gpt, 1), **_sampling(a, gpt.cfg.model_type, BUILTIN_INPAINT_SAMPLING),
        candidates=a.candidates or _builtin_or(a, BUILTIN_INPAINT_SAMPLING, gpt, PARTICLES),
        passes=a.passes, callback=Progress("inpaint"),
    )  # fmt: skip
    for name in _save(to_uint8(vq.decode(out)), a.out):
        print(name)


def cmd_info(a: argparse.Namespace) -> None:
    sd, meta = read_state_dict(a.path, "info")
    kind = detect_kind(sd)
    params = sum(v.numel() for v in sd.values())
    info = {"file": a.path, "kind": kind, "tensors": len(sd), "parameters": params}
    if meta.get("config"):
        info["config"] = json.loads(meta["config"])
    elif kind in ("gpt", "vq"):
        try:
            model = model_from_state_dict(Path(a.path), sd, meta, where="info")
            info["config (inferred)"] = json.loads(model.cfg.to_json())
        except CheckpointError as e:
            info["config"] = f"not inferable: {e}"
    print(json.dumps(info, indent=2))


def cmd_export_onnx(a: argparse.Namespace) -> None:
    try:
        from .onnx_export import export_onnx
    except ImportError as e:
        raise SystemExit(f"error: export-onnx needs onnx and onnxscript ({e}): pip install onnx onnxscript") from e
    print(export_onnx(a.gpt, a.vq, a.out, dtype=a.dtype, with_vq=not a.no_vq, n_head=a.n_head, grid=a.grid))


@torch.no_grad()  # not set_grad_enabled(False): a caller's grad mode comes back on return
def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if a.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if a.command == "generate":
            cmd_generate(a)
        elif a.command == "inpaint":
            cmd_inpaint(a)
        elif a.command == "convert":
            convert(a.src, a.dst, n_head=a.n_head, grid=a.grid)
            print(a.dst)
        elif a.command == "export-onnx":
            cmd_export_onnx(a)
        else:
            cmd_info(a)
    except (CheckpointError, TextEncoderError, ValueError, TypeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
