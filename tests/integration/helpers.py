"""Shared by the integration tests: the workflow files, reading outputs back, the shapes checker gate."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gptimg_core.shapes import analyze, check, parse_prompt
from tests.comfy.server import REPO_ROOT, ComfyClient

WORKFLOWS = REPO_ROOT / "workflows"
API_DIR = WORKFLOWS / "api"
METRICS = REPO_ROOT / "gptimg_core" / "builtin" / "training_metrics.json"
# The workflow set the pack promises (workflows/<name>.json, api/<name>_api.json, <name>.jpg).
WORKFLOW_NAMES = (
    "text_to_image",
    "class_to_image",
    "inpainting",
    "outpainting",
    "variations",
    "img2img",
    "vq_round_trip",
    "llamagen_t2i",
    "llamagen_c2i",
    "janus_pro_t2i",
    "janus_pro_inpainting",
)
# workflows that need official files (LlamaGen's, a Janus-Pro folder), absent here (test_janus_server.py runs the
# Janus-Pro ones on a tiny random folder of the same name)
OFFICIAL = ("llamagen_", "janus_pro_")
BUILTIN_SIZE = (64, 64)  # the built-in model draws 8x8 tokens with VQ-8
# Share of a workflow's images the shapes checker must accept (trained built-in weights only).
CHECKER_MIN_PASS_RATE = 0.75  # of a workflow's images must have the asked colours (background and objects)
CLASS_MIN_PASS_RATE = 0.5  # the class workflow draws an orange triangle: well below what it scores, above chance
# A training recipe with fewer steps than this made smoke weights that draw nothing recognisable.
TRAINED_MIN_STEPS = 100


def artifacts_dir() -> Path:
    path = Path(os.environ.get("GPTIMG_ARTIFACTS") or REPO_ROOT / "tests" / "integration" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def needs_official_files(name: str) -> bool:
    return name.startswith(OFFICIAL)


def load_api(name: str) -> dict[str, Any]:
    """workflows/api/<name>_api.json (API format)."""
    return json.loads((API_DIR / f"{name}_api.json").read_text())


def nodes_of(prompt: dict[str, Any], class_type: str) -> dict[str, dict[str, Any]]:
    """{id: node} of the API-format prompt's nodes of that class."""
    return {k: v for k, v in prompt.items() if v.get("class_type") == class_type}


def output_images(client: ComfyClient, entry: dict[str, Any]) -> dict[str, list[Image.Image]]:
    """{node id: images} that the prompt saved or previewed, fetched through /view."""
    out: dict[str, list[Image.Image]] = {}
    for node_id, outputs in entry.get("outputs", {}).items():
        images = [
            client.view(i["filename"], i.get("subfolder", ""), i.get("type", "output"))
            for i in outputs.get("images", [])
        ]
        if images:
            out[node_id] = images
    return out


def blank_reason(image: Image.Image) -> str | None:
    """Why an image counts as blank (one flat colour), or None."""
    px = np.asarray(image.convert("RGB"), dtype=np.float32)
    spread = float(px.reshape(-1, 3).std(0).max())
    return f"flat image (largest channel std {spread:.2f})" if spread < 2.0 else None


def smoke_weights_reason(recipe: str) -> str | None:
    """Why the built-in `recipe` ("t2i"/"c2i") weights are too untrained for the checker, or None."""
    if not METRICS.is_file():
        return f"{METRICS.relative_to(REPO_ROOT)} is missing: no trained built-in weights"
    steps = json.loads(METRICS.read_text()).get("recipes", {}).get(recipe, {}).get("steps", 0)
    if steps < TRAINED_MIN_STEPS:
        return f"built-in {recipe} weights are a smoke run ({steps} training steps < {TRAINED_MIN_STEPS})"
    return None


def prompt_pass_rate(prompt_text: str, images: list[Image.Image]) -> float:
    """Share of images whose background and object colours the shapes checker reads as prompt_text asks.
    (Shapes are not required: the first built-in model gets a quarter of them right, see MODEL_CARD.md.)"""
    spec = parse_prompt(prompt_text)
    results = [check(spec, np.asarray(im.convert("RGB"))) for im in images]
    return float(np.mean([r.background and r.colour for r in results]))


def class_pass_rate(class_name: str, images: list[Image.Image]) -> float:
    """Share of images holding an object of the class's colour on another background (shapes are not
    required yet: see prompt_pass_rate)."""
    colour, _shape = class_name.split(" ")
    ok = []
    for im in images:
        found = analyze(np.asarray(im.convert("RGB")))
        ok.append(any(o.colour == colour for o in found.objects) and found.background != colour)
    return float(np.mean(ok))
