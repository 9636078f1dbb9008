"""Compiled decode steps (`load_gpt(..., compile=True)`) against eager ones on the built-in models, in one run.

Each built-in model at its recommended settings through `generate` (the t2i keeps the likeliest of 8 draws, all
8 decoded side by side; batch 1; the c2i also with SJD, whose verify windows compile too): the first compiled generation (it compiles), then milliseconds per image eager
and compiled, alternating, whether the tokens agree, and after how many images the compile has paid for
itself. The compile time depends on PyTorch's on-disk kernel cache: set TORCHINDUCTOR_CACHE_DIR to a new folder
for a cold one. GPT-B's numbers come from bench/decode_speed.py. Prints ratios; the README quotes a run.

    python bench/compiled_speed.py [--images 5] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ runs from a fresh clone, not installed

import torch  # noqa: E402

from gptimg_core import builtin_path, generate, load_gpt, load_text_encoder  # noqa: E402
from gptimg_core.compiled import can_compile  # noqa: E402

PROMPT = "a red circle and a green star on a white background"


def compare(name: str, kind: str, cond: dict, images: int, decoding: str = "ar") -> None:
    eager, fast = load_gpt(builtin_path(kind)), load_gpt(builtin_path(kind), compile=True)
    cond = {**cond, "decoding": decoding}
    t = time.perf_counter()
    generate(fast, seed=0, **cond)
    first = time.perf_counter() - t
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    same = True
    for i in range(images):
        out = {}
        for label, model in (("eager", eager), ("compiled", fast)):
            t = time.perf_counter()
            out[label] = generate(model, seed=i, **cond)
            times[label].append(time.perf_counter() - t)
        same = same and torch.equal(out["eager"], out["compiled"])
    e, c = (1000 * statistics.median(times[k]) for k in ("eager", "compiled"))
    paid = f"after {(first * 1000 - e) / (e - c):.0f} images" if e > c else "never"  # the first also made an image
    print(
        f"{name}: first compiled generation {first:.1f} s; {e:.1f} ms/image eager, {c:.1f} compiled: {e / c:.2f}x; "
        f"same tokens: {'yes' if same else 'no'}; the compile pays {paid}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="one image of the c2i: checks the script runs")
    a = ap.parse_args()
    if not can_compile():
        print("no C++ compiler (g++ or $CXX): torch.compile cannot build CPU kernels here; nothing to measure")
        return
    torch.set_num_threads(a.threads)
    images = 1 if a.quick else a.images
    print(f"torch {torch.__version__}, {a.threads} threads, {images} images per model (median), batch 1")
    compare("built-in c2i", "c2i", {"cond": torch.tensor([5])}, images)
    if not a.quick:
        compare("built-in c2i, sjd", "c2i", {"cond": torch.tensor([5])}, images, decoding="sjd")
        tokens = load_gpt(builtin_path("t2i")).cfg.cls_token_num
        te = load_text_encoder(builtin_path("text_encoder"), max_length=tokens)
        feats, mask = te.encode([PROMPT])
        compare("built-in t2i", "t2i", {"cond": feats, "cond_mask": mask}, images)


if __name__ == "__main__":
    main()
