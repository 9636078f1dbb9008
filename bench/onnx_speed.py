"""Decode speed on onnxruntime (an export of the model) against our PyTorch path, on CPU, in one run.

Models: the built-in t2i (random caption features of its shape, CFG 2; the T5 encoder is not timed) and a
GPT-B-sized c2i LlamaGen model with random weights (GPT_PRESETS["B"], 256 tokens, CFG 4), each exported
to a temporary folder (fp32, and fp16 with --fp16). Prints ms per decode step (median) and seconds per
image at batch 1 and 4 (CFG doubles the rows), with torch.set_num_threads and onnxruntime's
intra_op_num_threads both set to --threads, the ratio PyTorch / onnxruntime (above 1: onnxruntime wins),
and whether each backend drew PyTorch's tokens (same seed; fp16 may differ).

    python bench/onnx_speed.py [--threads 2] [--fp16] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone: the repo root holds gptimg_core

from gptimg_core import GPT, GPTConfig, builtin_path, generate, load_gpt  # noqa: E402
from gptimg_core.config import GPT_PRESETS  # noqa: E402
from gptimg_core.onnx_backend import load_onnx_gpt  # noqa: E402
from gptimg_core.onnx_export import export_onnx  # noqa: E402


def condition(gpt: GPT, batch: int) -> dict:
    """A condition for `batch` images: class ids, or random caption features with every position real."""
    cfg = gpt.cfg
    if cfg.model_type == "c2i":
        return {"cond": torch.arange(batch) % cfg.num_classes}
    g = torch.Generator().manual_seed(0)
    return {"cond": torch.randn(batch, cfg.cls_token_num, cfg.caption_dim, generator=g)}


def time_generation(model, cond: dict, scale: float) -> tuple[float, float, torch.Tensor]:
    """(seconds per image, median ms per decode step, the tokens) of one generation (seed 0)."""
    steps: list[float] = []
    last = [0.0]

    def tick(step: int, total: int, tokens: torch.Tensor) -> None:
        now = time.perf_counter()
        if step > 1:
            steps.append(now - last[0])
        last[0] = now

    batch = cond["cond"].shape[0]
    t = time.perf_counter()
    tokens = generate(model, **cond, cfg_scale=scale, top_k=0, seed=0, callback=tick)
    total = time.perf_counter() - t
    steps.sort()
    return total / batch, 1000 * steps[len(steps) // 2], tokens


def bench(name: str, gpt: GPT, scale: float, dtypes: list[str], threads: int, batches: tuple[int, ...]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        export_onnx(gpt, out_dir=tmp, dtype=dtypes, with_vq=False)
        sizes = {d: sum(f.stat().st_size for f in Path(tmp).glob(f"gpt_*{d}.*")) / 1e6 for d in dtypes}
        print(
            f"\n{name}: exported in {time.perf_counter() - t:.0f} s ({', '.join(f'{d} {mb:.0f} MB' for d, mb in sizes.items())})"
        )
        backends = {"pytorch fp32": gpt}
        for d in dtypes:
            backends[f"onnxruntime {d}"] = load_onnx_gpt(tmp, dtype=d, threads=threads)
        for model in backends.values():  # warm-up: a generation at batch 1
            time_generation(model, condition(gpt, 1), scale)
        print(f"{'':<20}{'batch':>6}{'ms/step':>10}{'s/image':>10}{'pytorch/this':>14}  same tokens as pytorch")
        for batch in batches:
            cond = condition(gpt, batch)
            results = {label: time_generation(model, cond, scale) for label, model in backends.items()}
            base = results["pytorch fp32"]
            for label, (s_img, ms, tokens) in results.items():
                same = "yes" if torch.equal(tokens, base[2]) else "no"
                print(f"{label:<20}{batch:>6}{ms:>10.1f}{s_img:>10.2f}{base[1] / ms:>13.2f}x  {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fp16", action="store_true", help="also time onnxruntime on fp16 graphs")
    ap.add_argument("--quick", action="store_true", help="a tiny model at batch 1: checks the script runs")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import onnxruntime

    dtypes = ["fp32", "fp16"] if a.fp16 else ["fp32"]
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {a.threads} threads each, CPU")
    if a.quick:
        torch.manual_seed(0)
        cfg = GPTConfig(dim=64, n_layer=2, n_head=4, block_size=16, vocab_size=512, num_classes=10)
        bench("tiny c2i (random weights), 16 tokens, cfg 4", GPT(cfg).eval(), 4.0, dtypes, a.threads, (1,))
        return
    with torch.no_grad():
        bench("built-in t2i, 64 tokens, cfg 2", load_gpt(builtin_path("t2i")), 2.0, dtypes, a.threads, (1, 4))
        dim, n_layer, n_head = GPT_PRESETS["B"]
        torch.manual_seed(0)
        cfg = GPTConfig(dim=dim, n_layer=n_layer, n_head=n_head, block_size=256, model_type="c2i", num_classes=1000)
        bench("GPT-B c2i (random weights), 256 tokens, cfg 4", GPT(cfg).eval(), 4.0, dtypes, a.threads, (1, 4))


if __name__ == "__main__":
    main()
