"""Decode speed of a GPT-B-sized c2i model (random weights, 256 tokens, CFG 4) on CPU or a GPU.

Prints, all measured in this one run: ms per decode step and seconds per image at batch 1 and 4, the same for a
baseline (plain `F.linear` layout, as LlamaGen runs) and for `W @ x.T` up to 16 rows without oneDNN (gptimg's
layout before oneDNN took the larger row counts; on a GPU all are F.linear, so both are left out), gptimg with
its decode passes compiled (`load_gpt(..., compile=True)`; on CPU with a C++ compiler; the compile time too),
on a GPU gptimg without CUDA graphs (the default replays them) and whether greedy tokens agree either way,
and the memory-bandwidth floor (weight bytes read per step / measured read bandwidth). With a LlamaGen checkout (`--llamagen DIR` or LLAMAGEN_DIR, the folder holding
autoregressive/models/generate.py; never part of this repository), also LlamaGen's own `generate` on the same
weights, side by side with ours (greedy, CFG 4, batch 1, alternating): seconds per image, the ratio, and
whether the tokens are the same.

    python bench/decode_speed.py [--threads 2] [--preset B] [--device cuda --dtype bf16] [--llamagen DIR] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone: the repo root holds gptimg_core

from gptimg_core import GPT, GPTConfig, cpu_linear, generate
from gptimg_core.checkpoint import DTYPES
from gptimg_core.compiled import can_compile
from gptimg_core.config import GPT_PRESETS


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def read_bandwidth(device: torch.device, gib: float = 1.0, repeats: int = 5) -> float:
    """Bytes/s of streaming reads of a buffer much larger than the caches (best of `repeats`)."""
    x = torch.ones(int(gib * 2**30) // 4, device=device)
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        x.sum()
        sync(device)
        best = min(best, time.perf_counter() - t)
    return x.numel() * 4 / best


def weight_bytes_per_step(gpt: GPT) -> int:
    """Bytes of weights a decode step reads: every matrix except the embedding tables (a row each)."""
    skip = {"tok_embeddings.weight", "cls_embedding.embedding_table.weight"}
    return sum(p.numel() * p.element_size() for n, p in gpt.named_parameters() if n not in skip)


def time_generation(gpt: GPT, batch: int) -> tuple[float, float]:
    """(seconds per image, ms per decode step) of one generation at this batch size."""
    steps: list[float] = []
    last = [0.0]

    device = gpt.tok_embeddings.weight.device

    def tick(step: int, total: int, tokens: torch.Tensor) -> None:
        sync(device)
        now = time.perf_counter()
        if step > 1:
            steps.append(now - last[0])
        last[0] = now

    cond = torch.arange(batch) % gpt.cfg.num_classes
    sync(device)
    t = time.perf_counter()
    generate(gpt, cond, cfg_scale=4.0, top_k=0, generator=torch.Generator().manual_seed(0), callback=tick)
    sync(device)
    total = time.perf_counter() - t
    steps.sort()
    return total / batch, 1000 * steps[len(steps) // 2]


def llamagen_generate(folder: str | None, gpt: GPT) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """LlamaGen's own generate on gpt's weights: class ids (B,) -> greedy tokens (B, N) at CFG 4; None (with a
    message) when no checkout is given."""
    root = Path(folder or "")
    if not folder or not (root / "autoregressive" / "models" / "generate.py").is_file():
        print(f"LlamaGen's code not found in {str(root)!r}; pass --llamagen DIR or set LLAMAGEN_DIR: peer skipped")
        return None
    sys.path.insert(0, str(root))  # LlamaGen imports its own top-level `utils` and `autoregressive` packages
    from autoregressive.models.generate import generate as peer_generate
    from autoregressive.models.gpt import ModelArgs, Transformer

    c = gpt.cfg
    args = ModelArgs(
        dim=c.dim, n_layer=c.n_layer, n_head=c.n_head, vocab_size=c.vocab_size, block_size=c.block_size,
        num_classes=c.num_classes, cls_token_num=c.cls_token_num, model_type="c2i",
    )  # fmt: skip
    peer = Transformer(args).eval().to(gpt.device)
    peer.load_state_dict(gpt.state_dict(), strict=True)

    def run(cond: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():  # its decode loop enters a deprecated CUDA attention context every step
            warnings.simplefilter("ignore", FutureWarning)
            return peer_generate(peer, cond, c.block_size, cfg_scale=4.0, temperature=1.0, top_k=1, top_p=1.0)

    return run


def side_by_side(gpt: GPT, peer: Callable[[torch.Tensor], torch.Tensor], repeats: int, compiled_too: bool) -> None:
    """Ours (eager, and compiled steps when compiled_too) and LlamaGen's generate alternating, greedy at CFG 4,
    batch 1: seconds per image and the tokens."""
    device = gpt.device
    cond = torch.tensor([7], device=device)

    def ours(compile_steps: bool) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            gpt.compile_steps = compile_steps
            return generate(gpt, cond, cfg_scale=4.0, top_k=1).flatten(1)

        return run

    runs = {"gptimg": ours(False), **({"gptimg compiled": ours(True)} if compiled_too else {})}
    runs["LlamaGen"] = lambda: peer(cond).long()
    times: dict[str, list[float]] = {name: [] for name in runs}
    tokens = {}
    for _ in range(repeats):
        for name, run in runs.items():
            sync(device)
            t = time.perf_counter()
            tokens[name] = run()
            sync(device)
            times[name].append(time.perf_counter() - t)
    gpt.compile_steps = False
    median = {name: sorted(ts)[repeats // 2] for name, ts in times.items()}
    theirs = median.pop("LlamaGen")
    print(f"side by side, greedy, CFG 4, batch 1, median of {repeats} alternating runs:")
    print(f"  LlamaGen's generate {theirs:.2f} s/image")
    for name, t in median.items():
        same = torch.equal(tokens[name].cpu(), tokens["LlamaGen"].cpu())
        agree = (tokens[name].cpu() == tokens["LlamaGen"].cpu()).float().mean().item()
        print(
            f"  {name} {t:.2f} s/image: {theirs / t:.2f}x; same greedy tokens: "
            f"{'yes' if same else f'no ({100 * agree:.1f}% of positions agree)'}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--preset", default="B", choices=sorted(GPT_PRESETS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    ap.add_argument("--llamagen", default=os.environ.get("LLAMAGEN_DIR"), help="a LlamaGen checkout")
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs of the side-by-side comparison")
    ap.add_argument("--quick", action="store_true", help="a tiny model and 16 tokens: checks the script runs")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    dim, n_layer, n_head = (64, 2, 4) if a.quick else GPT_PRESETS[a.preset]
    cfg = GPTConfig(
        dim=dim,
        n_layer=n_layer,
        n_head=n_head,
        block_size=16 if a.quick else 256,
        model_type="c2i",
        num_classes=1000,
        vocab_size=512 if a.quick else 16384,
    )
    torch.manual_seed(0)
    gpt = GPT(cfg).eval().to(device=device, dtype=DTYPES[a.dtype])
    floor_ms = 1000 * weight_bytes_per_step(gpt) / read_bandwidth(device, gib=0.01 if a.quick else 1.0)
    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    where = (
        f"{a.threads} threads, OMP_WAIT_POLICY {policy}" if device.type == "cpu" else torch.cuda.get_device_name(device)
    )
    print(
        f"GPT-{'tiny' if a.quick else a.preset} c2i, {cfg.block_size} tokens, cfg 4 (batch doubled), {a.dtype}, {where}"
    )
    print(
        f"floor: {weight_bytes_per_step(gpt) / 1e6:.0f} MB of weights per step / measured bandwidth = {floor_ms:.1f} ms/step"
    )
    time_generation(gpt, 1)  # warm-up
    results = {}
    chosen = (cpu_linear.STREAM_ROWS, cpu_linear.ONEDNN_ROWS)
    baseline = device.type == "cpu"  # on a GPU every variant runs F.linear
    if baseline:
        vendor = cpu_linear.cpu_vendor() or "unknown vendor"
        parts = [f"W @ x.T at {r.start}-{r.stop - 1} rows" for r in chosen[:1] if r]
        parts += [f"oneDNN from {r.start} rows" for r in chosen[1:] if r]
        layout = ", ".join(parts + ["else F.linear"]) if parts else "F.linear only"
        print(f"CPU: {vendor}; gptimg's layout here: {layout} (cpu_linear.STREAM_ROWS, cpu_linear.ONEDNN_ROWS)")
    variants = (
        (
            ("gptimg", chosen),
            ("baseline F.linear", (range(0), range(0))),
            ("W @ x.T to 16 rows", (range(1, 17), range(0))),
        )
        if baseline
        else (("gptimg", chosen),)
    )
    for name, (stream, onednn) in variants:
        cpu_linear.STREAM_ROWS, cpu_linear.ONEDNN_ROWS = stream, onednn
        for batch in (1, 4):
            results[(name, batch)] = time_generation(gpt, batch)
    cpu_linear.STREAM_ROWS, cpu_linear.ONEDNN_ROWS = chosen
    if device.type == "cuda":  # "gptimg" replayed its passes from CUDA graphs; here the same launched one by one
        kept = gpt.cuda_graphs is None  # a failed capture or check sets False (and logs a warning)
        gpt.cuda_graphs = False
        for batch in (1, 4):
            results[("no CUDA graphs", batch)] = time_generation(gpt, batch)
        cond = torch.tensor([7], device=device)
        plain = generate(gpt, cond, cfg_scale=4.0, top_k=1)
        gpt.cuda_graphs = None
        graphed = generate(gpt, cond, cfg_scale=4.0, top_k=1)
        kept = kept and gpt.cuda_graphs is None
        agree = (graphed == plain).float().mean().item()
        state = "on" if kept else "turned off by a failed capture or check (see the warning above)"
        print(f"CUDA graphs: {state}; greedy tokens with and without them agree at {100 * agree:.1f}% of positions")
    compiled_too = baseline and can_compile()
    if compiled_too:  # load_gpt(..., compile=True): the decode passes through torch.compile
        gpt.compile_steps = True
        for batch in (1, 4):
            t = time.perf_counter()
            time_generation(gpt, batch)  # compiles for this batch shape
            print(f"compiled steps, batch {batch}: first generation (compiling) {time.perf_counter() - t:.0f} s")
            results[("gptimg compiled", batch)] = time_generation(gpt, batch)
        gpt.compile_steps = False
    else:
        print("compiled steps: skipped (" + ("not on CPU" if not baseline else "no C++ compiler") + ")")
    print(f"{'':<20}{'batch':>6}{'ms/step':>10}{'s/image':>10}{'x floor':>9}")
    for (name, batch), (s_img, ms) in results.items():
        print(f"{name:<20}{batch:>6}{ms:>10.1f}{s_img:>10.2f}{ms / floor_ms:>9.2f}")
    for batch in (1, 4) if baseline else ():
        ours, base = results[("gptimg", batch)], results[("baseline F.linear", batch)]
        print(f"batch {batch}: baseline / gptimg = {base[1] / ours[1]:.2f}x per step", end="")
        fast = results.get(("gptimg compiled", batch))
        print(f", baseline / gptimg compiled = {base[1] / fast[1]:.2f}x" if fast else "")
    peer = llamagen_generate(a.llamagen, gpt)
    if peer is not None:
        side_by_side(gpt, peer, 1 if a.quick else a.repeats, compiled_too)


if __name__ == "__main__":
    main()
