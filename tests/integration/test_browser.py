"""The pack in the real ComfyUI front end (headless Chromium): workflows load and run, the token grid
overlay follows the widgets, sampling stats show while the sampler runs. Screenshots go to
$GPTIMG_ARTIFACTS (default tests/integration/artifacts/)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from gptimg_core import pixel_mask_to_tokens
from tests.comfy.browser import require_browser, run_browser_check
from tests.comfy.server import ComfyClient
from tests.integration import graphs
from tests.integration.helpers import WORKFLOWS, needs_official_files

pytestmark = [pytest.mark.comfy, pytest.mark.browser]

PW = Path(__file__).resolve().parent / "pw"
UI_NAMES = sorted(p.stem for p in WORKFLOWS.glob("*.json"))
OVERLAY_TYPES = ("GPTImgTokenInpaint", "GPTImgTokenMaskPreview")
FILL = (255, 64, 160, 0.35)  # web/token_grid_overlay.js FILL
RUNNING = re.compile(r"^\d+/(\d+) tokens · [\d.]+ tok/s · ETA [\d.]+ (s|min)")
FINISHED = re.compile(r"^✓ (\d+) tokens · [\d.]+ tok/s$")


@pytest.fixture(autouse=True)
def _browser() -> None:
    require_browser()


def check(client: ComfyClient, workflow: Path, shots: Path, name: str, **kw: Any) -> dict[str, Any]:
    """run_browser_check, screenshots as <shots>/<name>.png (and <name>_node.png), asserting a clean page."""
    result = run_browser_check(
        client.base_url,
        workflow,
        shots / f"{name}.png",
        timeout=240,
        probe_js=(PW / "stats_probe.js").read_text(),
        after_js=(PW / "overlay_after.js").read_text(),
        clip_screenshot_path=shots / f"{name}_node.png",
        fit_view=True,
        viewport=(1920, 1080),
        **kw,
    )
    assert result["error"] is None, result["error"]
    assert result["missing_node_types"] == []
    ours = [e for e in result["console_errors"] if "/extensions/gptimg/" in e.get("url", "") + e["text"]]
    assert ours == [], f"console errors from our extension: {ours}"
    assert result["console_errors"] == [], result["console_errors"]
    assert not [t for t in result["toasts"] if re.match(r"(warn|error)\b", t)], result["toasts"]
    return result


def assert_overlay_drawn(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every overlay node drew cells matching its widgets, and the canvas shows the cell tint."""
    drawn = result["after"]["nodes"]
    assert drawn, "no Token Inpaint / Token Mask Preview node"
    for node in drawn:
        assert node["grid"] is not None, f"node {node['id']} got no gptimg_grid in its UI output"
        assert node["drawn"], f"node {node['id']}: the overlay drew nothing"
        for d in node["drawn"]:
            want = {
                "mode": d["settings"]["mask_mode"],
                "threshold": d["settings"]["threshold"],
                "grow": d["settings"]["grow"],
            }
            assert d["opts"] == want, "the overlay did not follow the widgets"
        assert node["pixel"] is not None, f"node {node['id']}: the mask selects no cell"
        with_, without = node["pixel"]["with"], node["pixel"]["without"]
        expected = [round(c * (1 - FILL[3]) + f * FILL[3]) for c, f in zip(without[:3], FILL[:3], strict=True)]
        assert all(abs(a - b) <= 4 for a, b in zip(with_[:3], expected, strict=True)), (with_, without, expected)
    return drawn


def assert_stats_shown(result: dict[str, Any], total: int | None = None) -> None:
    """Each node that showed stats showed running lines, then one finished line, last."""
    seen = result["probes"][-1]["value"] if result["probes"] else {}
    assert seen, "no sampling stats shown on any node"
    for node_id, texts in seen.items():
        *running, last = texts
        assert running and all(RUNNING.match(t) for t in running), f"node {node_id}: {texts}"
        assert FINISHED.match(last), f"node {node_id}: {texts}"
        if total is not None:
            assert {int(RUNNING.match(t).group(1)) for t in running} == {total}
            assert int(FINISHED.match(last).group(1)) == total
    phases = {p["phase"] for p in result["probes"]}
    assert "loaded" in phases  # the hook was in place before the prompt was queued


@pytest.mark.parametrize("name", UI_NAMES)
def test_ui_workflow_loads_and_runs(gptimg_server: ComfyClient, name: str, artifacts: Path) -> None:
    workflow = WORKFLOWS / f"{name}.json"
    queue = not needs_official_files(name)
    result = check(gptimg_server, workflow, artifacts, f"ui_{name}", queue=queue)
    types = {n["type"] for n in json.loads(workflow.read_text())["nodes"]}
    if not queue:
        return  # LlamaGen's official files are not here; loading cleanly is what we can check
    assert result["prompt_error"] is None, result["prompt_error"]
    assert result["status"]["status_str"] == "success", result["status"]
    assert any(o.get("images") for o in result["outputs"].values()), "no images"
    if types & set(OVERLAY_TYPES):
        assert_overlay_drawn(result)
    if types & {"GPTImgSampler", "GPTImgTokenInpaint", "GPTImgOutpaint", "GPTImgVariations", "GPTImgImg2Img"}:
        assert_stats_shown(result)


def overlay_graph() -> dict[str, Any]:
    """t2i with 16 images (slow enough to watch the stats), then Token Mask Preview and Token Inpaint of
    a known mask: a 20x12 block at (12, 20) of a 64x64 image."""
    g = graphs.t2i(batch_size=16)
    g.update(
        {
            "20": graphs.solid_mask(64, 0.0),
            "21": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 20, "height": 12}},
            "22": {
                "class_type": "MaskComposite",
                "inputs": {"destination": ["20", 0], "source": ["21", 0], "x": 12, "y": 20, "operation": "add"},
            },
            "23": {
                "class_type": "GPTImgTokenMaskPreview",
                "inputs": {
                    "image": ["6", 0],
                    "mask": ["22", 0],
                    "vq": ["2", 0],
                    "mask_mode": "any",
                    "threshold": 0.5,
                    "grow": 0,
                },
            },
            "24": {
                "class_type": "GPTImgTokenInpaint",
                "inputs": {
                    "model": ["1", 0],
                    "tokens": ["5", 0],
                    "mask": ["22", 0],
                    "positive": ["4", 0],
                    **{
                        k: v
                        for k, v in graphs.sampler_inputs().items()
                        if k in ("seed", "cfg", "temperature", "top_k", "top_p")
                    },
                    "mask_mode": "any",
                    "threshold": 0.5,
                    "grow": 0,
                    "candidates": 1,
                    "passes": 1,
                },
            },
            "25": {"class_type": "GPTImgVQDecode", "inputs": {"vq": ["2", 0], "tokens": ["24", 0]}},
            "26": {"class_type": "PreviewImage", "inputs": {"images": ["25", 0]}},
        }
    )
    return g


def test_overlay_follows_widgets_and_stats_show(gptimg_server: ComfyClient, artifacts: Path, tmp_path: Path) -> None:
    workflow = tmp_path / "overlay_api.json"
    workflow.write_text(json.dumps(overlay_graph()))
    result = check(gptimg_server, workflow, artifacts, "overlay", queue=True, load_api=True)
    assert result["status"]["status_str"] == "success", result["status"]
    assert_stats_shown(result, total=64)

    mask = torch.zeros(1, 64, 64)
    mask[:, 20:32, 12:32] = 1.0
    drawn = assert_overlay_drawn(result)
    assert {n["type"] for n in drawn} == set(OVERLAY_TYPES)
    for node in drawn:
        assert (node["grid"]["h"], node["grid"]["w"], node["grid"]["downsample"]) == (8, 8, 8)
        for d in node["drawn"]:
            s = d["settings"]
            want = pixel_mask_to_tokens(mask, 8, mode=s["mask_mode"], threshold=s["threshold"], grow=s["grow"])
            assert d["cells"] == want.flatten().tolist(), f"node {node['id']} {s}: overlay != gptimg_core"
        assert len({tuple(d["cells"]) for d in node["drawn"]}) == len(node["drawn"]), "settings should differ"
