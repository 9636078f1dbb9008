"""web/lib/token_cells.js selects the same token cells as gptimg_core.editing.pixel_mask_to_tokens."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gptimg_core import pixel_mask_to_tokens

MODULE = Path(__file__).resolve().parents[2] / "web" / "lib" / "token_cells.js"
SETTINGS = [
    {"mode": "any", "threshold": 0.5, "grow": 0},
    {"mode": "any", "threshold": 0.5, "grow": 2},
    {"mode": "threshold", "threshold": 0.3, "grow": 0},
    {"mode": "threshold", "threshold": 0.5, "grow": 1},
    {"mode": "threshold", "threshold": 1.0, "grow": 0},
]


def test_js_matches_pixel_mask_to_tokens() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH (install Node.js >= 20)")
    g = torch.Generator().manual_seed(0)
    ds = 8
    cases = []
    for i in range(6):
        h, w = 3 + i, 7 - i // 2
        # blocky soft masks so coverage hits 0, 1 and fractions in between
        mask = (torch.rand(1, h * 2, w * 2, generator=g) * 1.6 - 0.3).clamp(0, 1)
        mask = F.interpolate(mask[None], scale_factor=ds // 2, mode="nearest")[0]
        coverage = F.avg_pool2d(mask[:, None], ds)[0, 0]  # (h, w), what the nodes send as "gptimg_grid"
        for s in SETTINGS:
            want = pixel_mask_to_tokens(mask, ds, mode=s["mode"], threshold=s["threshold"], grow=s["grow"])[0]
            cases.append(
                {"h": h, "w": w, "coverage": coverage.flatten().tolist(), "opts": s, "want": want.flatten().tolist()}
            )
    script = (
        f"import({json.dumps(MODULE.as_uri())}).then(m => {{"
        "const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(cases.map(c => m.selectedCells(c.coverage, c.h, c.w, c.opts))));});"
    )
    proc = subprocess.run(["node", "-e", script], input=json.dumps(cases), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for case, cells in zip(cases, got, strict=True):
        assert cells == case["want"], case["opts"]
    assert any(any(c["want"]) and not all(c["want"]) for c in cases)  # the cases are not trivial
