"""The "gptimg_grid" UI output that web/token_grid_overlay.js reads: from it the overlay must select
exactly the cells the node itself selects (gptimg_core.pixel_mask_to_tokens), for any mask."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from gptimg_core import pixel_mask_to_tokens
from tests.comfy.server import ComfyClient
from tests.integration import graphs

pytestmark = pytest.mark.comfy


def grid_of(client: ComfyClient, value: float, size: tuple[int, int], at: tuple[int, int]) -> tuple[dict, torch.Tensor]:
    """Run Token Mask Preview on a 64x64 image with a `value` block of `size` (w, h) at `at` (x, y);
    returns its gptimg_grid entry and the same mask built here."""
    g = graphs.mask_preview(64, 64)
    g["2"] = graphs.solid_mask(64, 0.0)
    g["4"] = {"class_type": "SolidMask", "inputs": {"value": value, "width": size[0], "height": size[1]}}
    g["5"] = {
        "class_type": "MaskComposite",
        "inputs": {"destination": ["2", 0], "source": ["4", 0], "x": at[0], "y": at[1], "operation": "add"},
    }
    g["3"]["inputs"]["mask"] = ["5", 0]
    entry = client.wait(client.post_prompt(g), timeout=60)
    (grid,) = entry["outputs"]["3"]["gptimg_grid"]
    mask = torch.zeros(1, 64, 64)
    mask[:, at[1] : at[1] + size[1], at[0] : at[0] + size[0]] = value
    return grid, mask


def js_cells(grid: dict[str, Any], mode: str, threshold: float) -> list[bool]:
    """web/lib/token_cells.js selectedCells without grow (tested against the core in tests/web)."""
    t = torch.tensor(threshold, dtype=torch.float32).item()  # Math.fround
    return [(c >= t) if mode == "threshold" else (c > 0) for c in grid["coverage"]]


def test_grid_describes_the_token_cells(gptimg_server: ComfyClient) -> None:
    grid, mask = grid_of(gptimg_server, 1.0, (20, 12), (12, 20))
    assert (grid["h"], grid["w"], grid["downsample"]) == (8, 8, 8)
    want = F.avg_pool2d(mask[:, None], 8)[0, 0].flatten().tolist()
    assert grid["coverage"] == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize(
    ("value", "size", "at", "mode", "threshold"),
    [
        (1.0, (20, 12), (12, 20), "any", 0.5),
        (1.0, (20, 12), (12, 20), "threshold", 0.5),
        (0.003, (1, 1), (30, 30), "any", 0.5),  # a faint feathered edge: 0.003 / 64 of one cell
        (0.49997, (8, 8), (8, 8), "threshold", 0.5),  # just under the threshold
    ],
)
def test_overlay_selects_what_the_node_selects(
    gptimg_server: ComfyClient, value: float, size: tuple[int, int], at: tuple[int, int], mode: str, threshold: float
) -> None:
    grid, mask = grid_of(gptimg_server, value, size, at)
    node = pixel_mask_to_tokens(mask, 8, mode=mode, threshold=threshold)[0].flatten().tolist()
    assert js_cells(grid, mode, threshold) == node, "the overlay would show other cells than the node repaints"
