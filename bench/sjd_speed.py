"""Speculative Jacobi decoding against plain decoding, in one run: forward passes and seconds per image.

The built-in t2i and c2i at their recommended settings (one draw per image, batch 1), then GPT-B with random
weights (LlamaGen's c2i settings), for a few window sizes. Prints ratios; the README quotes a run.

    python bench/sjd_speed.py [--images 8] [--windows 4 8 16 32] [--threads 2] [--skip-gpt-b]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ runs from a fresh clone, not installed

import torch  # noqa: E402

from gptimg_core import GPT, GPT_PRESETS, GPTConfig, builtin_path, load_gpt, load_text_encoder  # noqa: E402
from gptimg_core.decoding import Request, run  # noqa: E402
from gptimg_core.sampling import Draws, image_generators  # noqa: E402

PROMPT = "a small red circle in the top left and a green star in the bottom right on a blue background"


def measure(model, cond, opts, images: int) -> tuple[float, float]:
    """Mean forward passes and median seconds per image, one image at a time (seeds 0..images-1)."""
    passes, times = [], []
    for i in range(images):
        req = Request(model, cond, opts, Draws(image_generators(i, 1), 1))
        t0 = time.perf_counter()
        run(req)
        times.append(time.perf_counter() - t0)
        passes.append(req.passes)
    return statistics.mean(passes), statistics.median(times)


def compare(name: str, model, cond, images: int, windows: list[int]) -> None:
    base = model.recommended.options("sample", decoding="ar")
    ar_passes, ar_s = measure(model, cond, base, images)
    print(f"{name}: ar  {ar_passes:6.1f} passes {ar_s * 1000:8.1f} ms/image")
    for w in windows:
        passes, s = measure(model, cond, model.recommended.options("sample", decoding="sjd", window=w), images)
        print(
            f"{name}: sjd window {w:3d} {passes:6.1f} passes {s * 1000:8.1f} ms/image   "
            f"{ar_passes / passes:4.2f}x fewer passes, {ar_s / s:4.2f}x faster"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--windows", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-gpt-b", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {a.threads} threads, {a.images} images per setting, batch 1")
    with torch.no_grad():
        t2i, c2i = load_gpt(builtin_path("t2i")), load_gpt(builtin_path("c2i"))
        te = load_text_encoder(builtin_path("text_encoder"), max_length=t2i.cfg.cls_token_num)
        feats, mask = te.encode([PROMPT])
        for name, model, cond, cmask in (
            ("built-in t2i", t2i, feats, mask),
            ("built-in c2i", c2i, torch.tensor([5]), None),
        ):
            c = model.condition(cond, cmask, None, None, guided=model.recommended.sample.uses_cfg, where="bench")
            compare(name, model, c, a.images, a.windows)
        if not a.skip_gpt_b:
            torch.manual_seed(0)
            dim, n_layer, n_head = GPT_PRESETS["B"]
            cfg = GPTConfig(dim=dim, n_layer=n_layer, n_head=n_head, block_size=256, model_type="c2i", num_classes=1000)
            gpt_b = GPT(cfg).eval()
            c = gpt_b.condition(torch.tensor([207]), None, None, None, guided=True, where="bench")
            compare("GPT-B (random weights)", gpt_b, c, max(1, a.images // 4), a.windows)


if __name__ == "__main__":
    main()
