"""What lower-precision GPT weights buy and cost on CPU: fp32, bf16 and int8 (weight-only) side by side.

Prints, all measured in this one run: ms per decode step of a GPT-B-sized c2i model (random weights, batch 1,
CFG 4 so 2 rows), the precisions alternating round by round (median of each round's median step); and the
share of greedy tokens equal to fp32's on the built-in t2i (CFG at its own scale, top_k 1) for prompts of
every colour and shape. The built-in model's evaluation rates per precision: `python -m gptimg_core.builtin.eval --dtype`.

    python bench/precision.py [--threads 2] [--rounds 3] [--steps 64] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone: the repo root holds gptimg_core

from gptimg_core import GPT, GPTConfig, generate, load_gpt
from gptimg_core.builtin import BUILTIN_SAMPLING, builtin_path
from gptimg_core.builtin.shapes.world import COLOURS, SHAPES
from gptimg_core.config import GPT_PRESETS
from gptimg_core.quant import cpu_has_native_bf16, quantize_int8
from gptimg_core.sampling import Draws, SamplingOptions, guide, sample
from gptimg_core.text_encoder import load_text_encoder

PRECISIONS = ("fp32", "bf16", "int8")


def with_precision(gpt: GPT, name: str) -> GPT:
    """A copy of an fp32 GPT in this precision."""
    import copy

    out = copy.deepcopy(gpt)
    if name == "int8":
        return quantize_int8(out)
    return out.to({"fp32": torch.float32, "bf16": torch.bfloat16}[name])


def step_ms(gpt: GPT, steps: int) -> float:
    """Median ms of a decode step (sample + one forward of 2 rows) over `steps` steps after the prefill."""
    opts, draws = SamplingOptions(cfg_scale=4.0, top_k=0), Draws(torch.Generator().manual_seed(0), 1)
    times = []
    with torch.no_grad():
        state = gpt.start(gpt.condition(torch.tensor([1]), None, None, None, guided=True, where="bench"))
        logits = state.prefill()  # (2, V)
        for t in range(steps):
            t0 = time.perf_counter()
            tok = sample(guide(logits, 4.0), opts, draws)[:, None]  # (1, 1)
            logits = state.feed(torch.cat([tok, tok]), t, last_only=True)[:, -1]
            times.append(time.perf_counter() - t0)
    times.sort()
    return 1000 * times[len(times) // 2]


def agreement(names: tuple[str, ...], prompts: list[str]) -> dict[str, tuple[float, float]]:
    """Per precision: (share of greedy tokens equal to fp32's, share of images equal throughout) on the built-in t2i."""
    te = load_text_encoder(builtin_path("text_encoder"), max_length=load_gpt(builtin_path("t2i")).cfg.cls_token_num)
    feats, mask = te.encode(prompts)
    scale = BUILTIN_SAMPLING["t2i"]["cfg_scale"]
    tokens = {
        n: generate(load_gpt(builtin_path("t2i"), dtype=n), feats, cond_mask=mask, cfg_scale=scale, top_k=1).flatten(1)
        for n in names
    }
    ref = tokens["fp32"]
    return {n: ((t == ref).float().mean().item(), (t == ref).all(1).float().mean().item()) for n, t in tokens.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="a tiny model, one round: checks the script runs")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dim, n_layer, n_head = (64, 2, 4) if a.quick else GPT_PRESETS["B"]
    rounds, steps = (1, 4) if a.quick else (a.rounds, a.steps)
    cfg = GPTConfig(dim=dim, n_layer=n_layer, n_head=n_head, block_size=256, vocab_size=512 if a.quick else 16384)
    torch.manual_seed(0)
    base = GPT(cfg).eval()
    models = {n: with_precision(base, n) for n in PRECISIONS}
    native = "native bf16" if cpu_has_native_bf16() else "NO native bf16 (emulated)"
    print(f"GPT-{'tiny' if a.quick else 'B'} c2i, batch 1, cfg 4 (2 rows), {a.threads} threads, CPU with {native}")
    ms: dict[str, list[float]] = {n: [] for n in PRECISIONS}
    for _ in range(rounds):
        for n in PRECISIONS:
            ms[n].append(step_ms(models[n], steps))
    med = {n: sorted(v)[len(v) // 2] for n, v in ms.items()}
    prompts = [f"a {c} {s} on a {b} background" for c, b in (("red", "blue"), ("white", "black")) for s in SHAPES]
    prompts = prompts[:2] if a.quick else prompts + [f"a {c} circle" for c in COLOURS]
    agree = agreement(PRECISIONS, prompts)
    print(f"{'':<6}{'ms/step':>9}{'x fp32':>8}{'greedy tokens = fp32':>22}{'images = fp32':>15}   ms/step by round")
    for n in PRECISIONS:
        rs = " ".join(f"{x:.1f}" for x in ms[n])
        tok, img = agree[n]
        print(f"{n:<6}{med[n]:>9.1f}{med['fp32'] / med[n]:>8.2f}{100 * tok:>21.1f}%{100 * img:>14.1f}%   {rs}")
    print(
        f"(agreement: built-in t2i, {len(prompts)} prompts, greedy, its CFG scale; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')})"
    )


if __name__ == "__main__":
    main()
