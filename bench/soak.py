"""Soak: many generations and inpaints in one process, printing resident memory at start and end and the time
per call (min / median / max), so that a leak or a slowdown over time shows. Not a test: read the numbers.

    python bench/soak.py [--calls 200] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ runs from a fresh clone, not installed

import torch  # noqa: E402

from gptimg_core import builtin_path, generate, inpaint, load_gpt, load_text_encoder, load_vq  # noqa: E402


def rss_mib() -> float:
    """This process's resident memory now (Linux /proc), else its peak (getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summary(name: str, times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return f"{name}: {len(ms)} calls, ms min {min(ms):.1f} / median {statistics.median(ms):.1f} / max {max(ms):.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200, help="generations, and as many inpaints")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="5 calls each: checks the script runs")
    a = ap.parse_args()
    calls = 5 if a.quick else a.calls
    torch.set_num_threads(a.threads)
    with torch.no_grad():
        gpt, vq = load_gpt(builtin_path("t2i")), load_vq(builtin_path("vq"))
        te = load_text_encoder(builtin_path("text_encoder"), max_length=gpt.cfg.cls_token_num)
        feats, mask = te.encode(["a red circle and a green star on a white background"])
        keep = torch.ones(1, gpt.grid, gpt.grid, dtype=torch.bool)
        keep[:, : gpt.grid // 2, : gpt.grid // 2] = False
        start = rss_mib()
        print(f"torch {torch.__version__}, {a.threads} threads; resident memory at start {start:.0f} MiB")
        gen, edit = [], []
        for i in range(calls):
            t0 = time.perf_counter()
            codes = generate(gpt, feats, cond_mask=mask, seed=i)
            vq.decode(codes)
            gen.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            inpaint(gpt, codes, keep, feats, cond_mask=mask, seed=i)
            edit.append(time.perf_counter() - t0)
            if i == calls // 2:
                middle = rss_mib()
        end = rss_mib()
        print(summary("generate + decode (built-in t2i, its settings)", gen))
        print(summary("inpaint (a quarter of the grid, its settings)", edit))
        print(f"resident memory: start {start:.0f} MiB, half way {middle:.0f} MiB, end {end:.0f} MiB")


if __name__ == "__main__":
    main()
