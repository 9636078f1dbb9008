"""What per-image seeds cost: a batch drawn with one generator per image (seed=: image i is the batch of one
with seed + i) against the same batch sharing one generator, in one run. The batch still runs as one batch;
only the random draws are made image by image.

    python bench/batch_seeds.py [--batch 8] [--repeats 5] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ runs from a fresh clone, not installed

import torch  # noqa: E402

from gptimg_core import builtin_path, generate, load_gpt  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="batch 2, one repeat: checks the script runs")
    a = ap.parse_args()
    if a.quick:
        a.batch, a.repeats = 2, 1
    torch.set_num_threads(a.threads)
    c2i = load_gpt(builtin_path("c2i"))
    labels = torch.arange(a.batch) % c2i.cfg.num_classes
    times: dict[str, list[float]] = {"per image (seed=)": [], "shared (generator=)": []}
    with torch.no_grad():
        for r in range(a.repeats):  # alternating, so that a busy minute hits both alike
            for name in times:
                kw = {"seed": r} if name.startswith("per") else {"generator": torch.Generator().manual_seed(r)}
                t0 = time.perf_counter()
                generate(c2i, labels, **kw)
                times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["shared (generator=)"])
    print(f"built-in c2i, batch {a.batch}, {a.threads} threads, median of {a.repeats}:")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"  {name:22s} {m * 1000:8.1f} ms per batch  {m / base:5.2f}x the shared generator's time")


if __name__ == "__main__":
    main()
