"""Command line: `python -m gptimg_core {generate,inpaint,convert,info,export-onnx}`. Without model paths the
built-in model is used."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .builtin import BUILTIN_RECOMMENDED, builtin_path
from .checkpoint import (
    GPT_DTYPES,
    ONNX_CONFIG,
    VQ_DTYPES,
    CheckpointError,
    convert,
    detect_kind,
    load_gpt,
    load_vq,
    model_from_state_dict,
    read_state_dict,
)
from .editing import inpaint, pixel_mask_to_tokens
from .generate import generate
from .gpt import GPT
from .images import from_uint8, load_image, load_mask, save_png, to_uint8
from .janus import is_janus_folder
from .labels import class_names_for, resolve_class, stored_class_names
from .sampling import DECODINGS, SamplingOptions
from .settings import LLAMAGEN
from .text_encoder import TextEncoderError, load_text_encoder


class CliError(Exception):
    """A mistake in the command line or its files: main prints `error: <message>` and exits 2."""


EXIT_ERROR = 2  # every failure the CLI reports, as argparse's own usage errors


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
    p.add_argument(
        "--class-id",
        default=None,
        help="class id, or a class name where the model has names (class-conditional models)",
    )
    p.add_argument("--seed", type=int, default=0, help="image i of a batch draws from seed + i")
    p.add_argument("--cfg", type=float, default=None, help="CFG scale (1 = off)")
    p.add_argument("--cfg-interval", type=int, default=None, help="guide this many tokens only (-1 = all)")
    p.add_argument("--cfg-schedule", choices=["constant", "linear"], default=None)
    p.add_argument("--temperature", type=float, default=None, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=None, help="0 = off, 1 = greedy")
    p.add_argument("--top-p", type=float, default=None, help="1 = off")
    p.add_argument("--decoding", choices=list(DECODINGS), default=None, help="ar: a token a pass; sjd: speculative")
    p.add_argument("--window", type=int, default=None, help="SJD's drafted tokens per pass")
    p.add_argument("--gpt", help="GPT checkpoint (default: built-in t2i, or c2i with --class-id)")
    p.add_argument("--vq", help="VQ tokenizer checkpoint (default: built-in)")
    p.add_argument("--text-encoder", help="T5 folder (default: built-in)")
    p.add_argument("--n-head", type=int, default=None, help="attention heads, for GPT files of no known preset")
    p.add_argument("--grid", type=int, default=None, help="token grid side (16 for 256px VQ-16, 24 for 384px)")
    p.add_argument("--max-length", type=int, default=None, help="text tokens (default: the GPT's condition length)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=GPT_DTYPES, default="fp32", help="GPT weights; int8: weight-only")
    p.add_argument("--vq-dtype", choices=VQ_DTYPES, default="fp32", help="VQ encoder/decoder; bf16: faster, close")
    p.add_argument("--compile", action="store_true", help="torch.compile the GPT's decode steps on CPU (needs g++)")
    p.add_argument("--out", required=True, help="output PNG path (batch > 1 adds -0, -1, …)")


def _recommended_help() -> str:
    lines = [f"built-in {k}: {r.describe()}" for k, r in BUILTIN_RECOMMENDED.items()]
    lines += [f"LlamaGen {k}: {r.describe()}" for k, r in LLAMAGEN.items()]
    return "Settings left unset are the model's recommendation (" + "; ".join(lines) + ")."


def _threads(text: str) -> int:
    """--threads: a whole number of threads, at least 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of threads, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m gptimg_core", description=__doc__, epilog=_recommended_help())
    ap.add_argument("-v", "--verbose", action="store_true")
    # every command takes --threads, after its name as users write it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--threads",
        type=_threads,
        default=None,
        help="torch CPU threads (default: torch's own, usually one per core); on a busy machine fewer threads "
        "can be much faster: keep threads x processes <= cores",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="prompt or class id -> PNG", parents=[common], epilog=_recommended_help())
    _sampling_args(g)
    g.add_argument("--batch", type=int, default=1)
    g.add_argument(
        "--best-of", "--candidates", dest="best_of", type=int, default=None,
        help="draws per image, the likeliest under the prompt kept (1 = one draw)",
    )  # fmt: skip
    i = sub.add_parser(
        "inpaint", help="repaint the masked part of an image", parents=[common], epilog=_recommended_help()
    )
    _sampling_args(i)
    i.add_argument("--image", required=True)
    i.add_argument("--mask", required=True, help="white (or transparent) = repaint")
    i.add_argument("--mask-mode", choices=["any", "threshold"], default="any")
    i.add_argument("--threshold", type=float, default=0.5)
    i.add_argument("--grow", type=int, default=0, help="grow the mask by N tokens")
    i.add_argument(
        "--particles", "--candidates", dest="particles", type=int, default=None,
        help="fills run side by side per pass, weighed by the kept tokens after them",
    )  # fmt: skip
    i.add_argument("--passes", type=int, default=1, help="rounds of particles; the best fill of all rounds is kept")
    c = sub.add_parser("convert", help="checkpoint -> our safetensors with its config", parents=[common])
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--n-head", type=int, default=None)
    c.add_argument("--grid", type=int, default=None)
    n = sub.add_parser("info", help="what a checkpoint file is", parents=[common])
    n.add_argument("path")
    x = sub.add_parser(
        "export-onnx", help="GPT (+ VQ) -> ONNX graphs for onnxruntime (--gpt DIR runs them)", parents=[common]
    )
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
    gpt = load_gpt(
        a.gpt or builtin_path(part), device=a.device, dtype=a.dtype, n_head=a.n_head, grid=a.grid, compile=a.compile
    )
    # a Janus folder holds its own VQ and tokenizer; an ONNX export its own VQ
    own = a.gpt if is_janus_folder(a.gpt or "") or (a.gpt and (Path(a.gpt) / ONNX_CONFIG).is_file()) else None
    vq = load_vq(a.vq or own or builtin_path("vq"), device=a.device, dtype=a.vq_dtype)
    if vq.codebook_size != gpt.vocab_size:
        raise CliError(f"the VQ has {vq.codebook_size} codes but the GPT's vocabulary is {gpt.vocab_size}")
    return gpt, vq


def _condition(a: argparse.Namespace, gpt: GPT, batch: int) -> dict:
    if gpt.kind == "c2i":
        if a.class_id is None:
            raise CliError("this GPT is class-conditional: pass --class-id")
        n = gpt.cfg.num_classes
        names = class_names_for(n, stored_class_names(a.gpt or builtin_path("c2i")))
        cid = resolve_class(a.class_id, names, n, where="--class-id")
        if names:
            print(f"class {cid} ({names[cid]})", file=sys.stderr)
        return {"cond": torch.full((batch,), cid, dtype=torch.long)}
    if not a.prompt or not a.prompt.strip():
        raise CliError("this GPT is text-conditional: pass a non-empty --prompt")
    if is_janus_folder(a.gpt or ""):
        te = load_text_encoder(a.text_encoder or a.gpt)
    else:
        te = load_text_encoder(
            a.text_encoder or builtin_path("text_encoder"), max_length=a.max_length or gpt.cfg.cls_token_num
        )
    te = te.to(a.device)
    feats, mask = te.encode([a.prompt] * batch)
    out = {"cond": feats, "cond_mask": mask}
    if a.negative_prompt:
        out["uncond"], out["uncond_mask"] = te.encode([a.negative_prompt] * batch)
    return out


def _sampling(a: argparse.Namespace) -> dict:
    """The sampling keywords the flags set; unset ones stay None: the model's recommendation."""
    return dict(
        cfg_scale=a.cfg, cfg_interval=a.cfg_interval, cfg_schedule=a.cfg_schedule, temperature=a.temperature,
        top_k=a.top_k, top_p=a.top_p, decoding=a.decoding, window=a.window, seed=a.seed,
    )  # fmt: skip


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


def _check_sampling_flags(a: argparse.Namespace, where: str) -> None:
    """The sampling flags, checked before any model is loaded (unset ones take the valid "off" defaults here)."""
    chosen = {k: v for k, v in _sampling(a).items() if k != "seed" and v is not None}
    SamplingOptions(**chosen).check(where)


def _check_out(out: str) -> None:
    """The output's folder must exist and the output must not be a folder: checked before any work."""
    path = Path(out)
    if path.is_dir():
        raise CliError(f"--out {out!r} is a folder; give a file name such as {str(path / 'out.png')!r}")
    if not path.parent.is_dir():
        raise CliError(f"--out {out!r}: the folder {str(path.parent)!r} does not exist; create it first")


def _check_device(device: str) -> None:
    try:
        d = torch.device(device)
    except RuntimeError as e:
        raise CliError(f"--device {device!r} is not a device name (cpu, cuda, cuda:1, mps): {e}") from e
    if d.type == "cuda" and not torch.cuda.is_available():
        raise CliError(f"--device {device!r}: this torch has no CUDA device; use --device cpu")


def _read_image(path: str, what: str) -> np.ndarray:
    try:
        return load_image(path) if what == "--image" else load_mask(path)
    except (OSError, ValueError) as e:
        raise CliError(f"{what} {path!r} could not be read as an image: {e}") from e


def cmd_generate(a: argparse.Namespace) -> None:
    if a.batch < 1:
        raise CliError(f"--batch must be >= 1, got {a.batch}")
    if a.best_of is not None and a.best_of < 1:
        raise CliError(f"--best-of must be >= 1 (1 = one draw per image), got {a.best_of}")
    _check_out(a.out)
    _check_device(a.device)
    _check_sampling_flags(a, a.command)
    gpt, vq = _models(a)
    codes = generate(
        gpt, **_condition(a, gpt, a.batch), **_sampling(a), best_of=a.best_of, callback=Progress("generate")
    )
    for name in _save(to_uint8(vq.decode(codes)), a.out):
        print(name)


def cmd_inpaint(a: argparse.Namespace) -> None:
    if a.particles is not None and a.particles < 1:
        raise CliError(f"--particles must be >= 1 (1 = one fill), got {a.particles}")
    _check_out(a.out)
    _check_device(a.device)
    _check_sampling_flags(a, a.command)
    image, mask = _read_image(a.image, "--image"), _read_image(a.mask, "--mask")
    gpt, vq = _models(a)
    if mask.shape != image.shape[:2]:
        raise CliError(
            f"the mask is {mask.shape[1]}x{mask.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}"
        )
    side = gpt.grid * vq.downsample
    if image.shape[:2] != (side, side):
        raise CliError(f"the image is {image.shape[1]}x{image.shape[0]}; this model works on {side}x{side} images")
    codes = vq.encode(from_uint8(image))
    redo = pixel_mask_to_tokens(
        torch.from_numpy(mask), vq.downsample, mode=a.mask_mode, threshold=a.threshold, grow=a.grow
    )
    out = inpaint(
        gpt, codes, ~redo, **_condition(a, gpt, 1), **_sampling(a), particles=a.particles, passes=a.passes,
        callback=Progress("inpaint"),
    )  # fmt: skip
    for name in _save(to_uint8(vq.decode(out)), a.out):
        print(name)


def cmd_info(a: argparse.Namespace) -> None:
    sd, meta = read_state_dict(a.path, "info")
    kind = detect_kind(sd)
    params = sum(v.numel() for v in sd.values())
    info = {"file": a.path, "kind": kind, "tensors": len(sd), "parameters": params}
    if meta.get("config"):
        try:
            info["config"] = json.loads(meta["config"])
        except ValueError as e:
            raise CliError(f"info: {Path(a.path).name}: its safetensors metadata 'config' is not JSON ({e})") from e
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
        raise CliError(f"export-onnx needs onnx and onnxscript ({e}): pip install onnx onnxscript") from e
    print(export_onnx(a.gpt, a.vq, a.out, dtype=a.dtype, with_vq=not a.no_vq, n_head=a.n_head, grid=a.grid))


@torch.no_grad()  # not set_grad_enabled(False): a caller's grad mode comes back on return
def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if a.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if a.threads is not None:
        torch.set_num_threads(a.threads)
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
    except (CliError, CheckpointError, TextEncoderError, ValueError, TypeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    return 0
