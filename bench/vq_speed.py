"""VQ-16 decode speed on CPU: one 256 px image (16x16 codes) through LlamaGen's VQ-16 layout with random
weights, our VQModel in several layouts/precisions against LlamaGen's own VQ code on the same weights.

Prints, all measured in this one run (variants alternating, median of the repeats): seconds per image, the
speed-up over LlamaGen's code, and how far each output is from LlamaGen's (largest difference in [-1, 1]
pixels, share of 8-bit values that differ). LlamaGen's code is never part of this repository: pass a
checkout (`--llamagen DIR` or LLAMAGEN_DIR, the folder holding tokenizer/tokenizer_image/vq_model.py);
without one the peer is skipped with a message and the variants are compared with our fp32 decode.

    python bench/vq_speed.py [--threads 2] [--repeats 5] [--llamagen DIR] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone: the repo root holds gptimg_core

from gptimg_core.config import VQConfig
from gptimg_core.quant import cpu_has_native_bf16
from gptimg_core.vq import VQModel


def llamagen_vq(folder: str | None, cfg: VQConfig, sd: dict) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """LlamaGen's VQ-16 decode_code on these weights, or None (with a message) when no checkout is given."""
    path = Path(folder or "") / "tokenizer" / "tokenizer_image" / "vq_model.py"
    if not folder or not path.is_file():
        print(f"LlamaGen's VQ code not found ({str(path)!r}); pass --llamagen DIR or set LLAMAGEN_DIR: peer skipped")
        return None
    spec = importlib.util.spec_from_file_location("llamagen_vq_model", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    args = mod.ModelArgs(
        codebook_size=cfg.codebook_size, codebook_embed_dim=cfg.embed_dim, codebook_show_usage=False,
        encoder_ch_mult=list(cfg.ch_mult), decoder_ch_mult=list(cfg.dec_mult), z_channels=cfg.z_channels,
    )  # fmt: skip
    peer = mod.VQModel(args).eval()
    peer.load_state_dict(sd, strict=True)

    def decode(codes: torch.Tensor) -> torch.Tensor:  # codes (B, h, w)
        B, h, w = codes.shape
        return peer.decode_code(codes.flatten(), shape=(B, cfg.embed_dim, h, w))

    return decode


def ours(vq: VQModel, *, layout: str, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    """Our decode (on a copy of the model) in this precision and layout: "default" (VQModel.decode as shipped:
    channels-last activations on CPU), "nchw" (activations kept NCHW) or "channels_last" (weights converted too)."""
    m = copy.deepcopy(vq).compute_in(dtype)  # as load_vq(..., dtype=) gives it: the codebook stays fp32
    if layout == "default":
        return m.decode
    if layout == "channels_last":
        m = m.to(memory_format=torch.channels_last)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format

    def decode(codes: torch.Tensor) -> torch.Tensor:
        quant = m.quantize.lookup(codes).to(dtype).contiguous(memory_format=fmt)
        return m.decoder(m.post_quant_conv(quant)).float().contiguous()

    return decode


def to8(x: torch.Tensor) -> torch.Tensor:
    return (127.5 * x + 128).clamp(0, 255).to(torch.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--llamagen", default=os.environ.get("LLAMAGEN_DIR"), help="a LlamaGen checkout")
    ap.add_argument("--quick", action="store_true", help="a 64 px image, one repeat: checks the script runs")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    # LlamaGen's VQ-16 layout (its code fixes the base width at 128); --quick alone: a narrow one
    cfg = VQConfig(ch=32, codebook_size=256) if a.quick and not a.llamagen else VQConfig()
    side = (64 if a.quick else 256) // cfg.downsample
    torch.manual_seed(0)
    vq = VQModel(cfg).eval()
    codes = torch.randint(cfg.codebook_size, (1, side, side), generator=torch.Generator().manual_seed(0))
    variants: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    peer = llamagen_vq(a.llamagen, cfg, vq.state_dict())
    if peer is not None:
        variants["LlamaGen fp32"] = peer
    variants["ours fp32 (as shipped)"] = ours(vq, layout="default", dtype=torch.float32)
    variants["ours fp32 NCHW"] = ours(vq, layout="nchw", dtype=torch.float32)
    variants["ours fp32 CL weights too"] = ours(vq, layout="channels_last", dtype=torch.float32)
    native = cpu_has_native_bf16()
    variants["ours bf16 (as shipped)"] = ours(vq, layout="default", dtype=torch.bfloat16)
    variants["ours bf16 NCHW"] = ours(vq, layout="nchw", dtype=torch.bfloat16)
    variants["ours bf16 CL weights too"] = ours(vq, layout="channels_last", dtype=torch.bfloat16)
    times: dict[str, list[float]] = {k: [] for k in variants}
    outs = {}
    with torch.no_grad():
        for k, f in variants.items():
            outs[k] = f(codes).float()  # warm-up, and the output compared below
        for _ in range(1 if a.quick else a.repeats):
            for k, f in variants.items():
                t = time.perf_counter()
                f(codes)
                times[k].append(time.perf_counter() - t)
    ref_name = next(iter(variants))
    ref = outs[ref_name]
    print(
        f"VQ decode, {side * cfg.downsample} px ({side}x{side} codes), ch {cfg.ch} mult {cfg.dec_mult}, random weights, "
        f"{a.threads} threads, CPU {'with' if native else 'WITHOUT'} native bf16; outputs against {ref_name}"
    )
    base = sorted(times[ref_name])[len(times[ref_name]) // 2]
    print(f"{'':<26}{'s/image':>9}{'speed-up':>10}{'max |diff|':>12}{'8-bit differ':>14}   repeats")
    for k in variants:
        med = sorted(times[k])[len(times[k]) // 2]
        diff = (outs[k] - ref).abs().max().item()
        differ = (to8(outs[k]) != to8(ref)).float().mean().item()
        reps = " ".join(f"{x:.2f}" for x in times[k])
        print(f"{k:<26}{med:>9.3f}{base / med:>9.2f}x{diff:>12.2e}{100 * differ:>13.2f}%   {reps}")


if __name__ == "__main__":
    main()
