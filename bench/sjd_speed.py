"""Speculative Jacobi decoding (sjd, and jacobi: ar's own tokens) against plain decoding (ar), in one run:
forward passes and seconds per image.

The built-in t2i and c2i at their recommended settings (the t2i keeps the likeliest of 8 draws, all 8 decoded
side by side; batch 1), then GPT-B with random weights (LlamaGen's c2i settings), for a few window sizes.
Prints ratios; the README quotes a run.

    python bench/sjd_speed.py [--images 8] [--windows 4 8 16 32] [--threads 2] [--skip-gpt-b] [--device cuda] [--quick]

On the t2i (best-of draws and CFG: 16 rows) the window decoders also run fed as one span from the slowest row
(how they feed Janus and ONNX models), against each row's window at the row's own positions (LlamaGen GPTs).

On CUDA the passes replay from CUDA graphs (the default there).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ runs from a fresh clone, not installed

import torch  # noqa: E402

from gptimg_core import GPT, GPT_PRESETS, GPTConfig, builtin_path, generate, load_gpt, load_text_encoder  # noqa: E402
from gptimg_core.sampling import WINDOW  # noqa: E402

PROMPT = "a red circle and a green star on a white background"


class Counted:
    """A model whose forward passes are counted (prefill and every feed), as generate runs it. span: its states
    say they cannot feed rows at their own positions, so window decoders feed one span from the slowest row
    (what they do for Janus and ONNX models)."""

    def __init__(self, model, span: bool = False) -> None:
        self.model, self.passes, self.span = model, 0, span

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def start(self, cond):
        state, outer = self.model.start(cond), self

        class State:
            per_row_positions = state.per_row_positions and not outer.span

            def prefill(self):
                outer.passes += 1
                return state.prefill()

            def feed(self, tokens, t, *, last_only=False):
                outer.passes += 1
                return state.feed(tokens, t, last_only=last_only)

            def keep_rows(self, n):
                state.keep_rows(n)

        return State()


def measure(model, cond: dict, decoding: str, window: int, images: int, span: bool = False) -> tuple[float, float]:
    """Mean forward passes and median seconds per image, as `generate` makes them at the model's recommended
    settings (best-of draws side by side included), one image at a time (seeds 0..images-1)."""
    passes, times = [], []
    for i in range(images):
        counted = Counted(model, span)
        t0 = time.perf_counter()
        generate(counted, **cond, seed=i, decoding=decoding, window=window)
        if model.device.type == "cuda":
            torch.cuda.synchronize(model.device)
        times.append(time.perf_counter() - t0)
        passes.append(counted.passes)
    return statistics.mean(passes), statistics.median(times)


def compare(name: str, model, cond: dict, images: int, windows: list[int], span: bool = False) -> None:
    """ar against sjd and jacobi at each window; span: also the window decoders fed one span for every row."""
    print(f"{name}: best_of {model.recommended.best_of}, {model.recommended.sample}")
    ar_passes, ar_s = measure(model, cond, "ar", WINDOW, images)
    print(f"{name}: ar  {ar_passes:6.1f} passes {ar_s * 1000:8.1f} ms/image")
    for decoding in ("sjd", "jacobi"):
        for w in windows:
            for one_span in (False, True) if span else (False,):
                passes, s = measure(model, cond, decoding, w, images, one_span)
                label = f"{decoding}{', one span' if one_span else ''}"
                print(
                    f"{name}: {label:16s} window {w:3d} {passes:6.1f} passes {s * 1000:8.1f} ms/image   "
                    f"{ar_passes / passes:4.2f}x fewer passes, {ar_s / s:4.2f}x faster"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--windows", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-gpt-b", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="one image, one window, no GPT-B: checks the script runs")
    a = ap.parse_args()
    if a.quick:
        a.images, a.windows, a.skip_gpt_b = 1, [4], True
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{a.threads} threads"
    print(f"torch {torch.__version__}, {where}, {a.images} images per setting, batch 1")
    with torch.no_grad():
        t2i, c2i = load_gpt(builtin_path("t2i"), device=device), load_gpt(builtin_path("c2i"), device=device)
        te = load_text_encoder(builtin_path("text_encoder"), max_length=t2i.cfg.cls_token_num)
        feats, mask = te.encode([PROMPT])
        t2i_cond = {"cond": feats.to(device), "cond_mask": mask.to(device)}
        compare("built-in t2i", t2i, t2i_cond, a.images, a.windows, span=True)  # 16 rows: where feeding matters
        compare("built-in c2i", c2i, {"cond": torch.tensor([5], device=device)}, a.images, a.windows)
        if not a.skip_gpt_b:
            torch.manual_seed(0)
            dim, n_layer, n_head = GPT_PRESETS["B"]
            cfg = GPTConfig(dim=dim, n_layer=n_layer, n_head=n_head, block_size=256, model_type="c2i", num_classes=1000)
            gpt_b = GPT(cfg).eval().to(device)
            b_cond = {"cond": torch.tensor([207], device=device)}
            compare("GPT-B (random weights)", gpt_b, b_cond, max(1, a.images // 4), a.windows)


if __name__ == "__main__":
    main()
