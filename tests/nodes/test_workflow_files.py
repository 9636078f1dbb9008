"""Every workflow file against the registered nodes: UI files are valid LiteGraph graphs whose widget values and
links fit the node schemas, API files mirror them, ComfyUI's own validator accepts them, and the built-in
graphs run headless. The same for the workflows as version 0.1 shipped them (tests/fixtures/saved_workflows):
a workflow a user saved before a change must still load and run after it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.nodes.comfy_inprocess import Recorder

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
SAVED = Path(__file__).resolve().parents[1] / "fixtures" / "saved_workflows"  # as users saved them before
NAMES = [
    "text_to_image", "class_to_image", "inpainting", "outpainting", "variations", "img2img", "vq_round_trip",
    "llamagen_t2i", "llamagen_c2i", "janus_pro_t2i", "janus_pro_inpainting",
]  # fmt: skip
OFFICIAL_GRAPHS = ("llamagen", "janus_pro")  # graphs that name files the user downloads
JANUS = "Janus-Pro-1B"  # a Hugging Face folder in models/gptimg
BUILTIN = [n for n in NAMES if not n.startswith(OFFICIAL_GRAPHS)]
# The official files the LlamaGen and Janus-Pro graphs name (documented in their notes; never shipped, never
# downloaded). A Janus-Pro folder is the model, the VQ and the text encoder at once.
OFFICIAL = {"ckpt_name": {"t2i_XL_stage1_256.pt", "c2i_L_384.pt", "c2i_B_256.pt", "Janus-Pro-1B"},
            "vq_name": {"vq_ds16_t2i.pt", "vq_ds16_c2i.pt", "Janus-Pro-1B"},
            "encoder_name": {"flan-t5-xl", "Janus-Pro-1B"}}  # fmt: skip
FRONTEND_ONLY = {"Note", "MarkdownNote"}  # drawn by the front end, never sent to the server
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}


def load_ui(name: str, root: Path = WORKFLOWS) -> dict:
    return json.loads((root / f"{name}.json").read_text())


def load_api(name: str, root: Path = WORKFLOWS) -> dict:
    return json.loads((root / "api" / f"{name}_api.json").read_text())


ROOTS = [pytest.param(WORKFLOWS, id="shipped"), pytest.param(SAVED, id="saved-0.1")]


def cases(names: list[str]) -> list:
    """(name, root) for every shipped workflow and every saved one (a workflow newer than 0.1 has none saved)."""
    return [
        pytest.param(name, root.values[0], id=f"{name}-{root.id}")
        for name in names
        for root in ROOTS
        if (root.values[0] / f"{name}.json").is_file()
    ]


def inputs_of(info: dict) -> list[tuple[str, Any, dict, bool]]:
    """(name, type, options, optional), required first: the front end's widget and slot order."""
    out = []
    for section in ("required", "optional"):
        for name in info["input_order"].get(section, []):
            spec = info["input"][section][name]
            out.append((name, spec[0], spec[1] if len(spec) > 1 else {}, section == "optional"))
    return out


def widget(kind: Any, options: dict) -> bool:
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not options.get("forceInput")


def split_widgets(info: dict, values: list) -> dict[str, Any]:
    """widgets_values -> {input name: value}; checks the count and the seed controls on the way. A file saved
    before an optional widget was added ends early: the front end gives such widgets their defaults."""
    out, rest = {}, list(values)
    for name, kind, options, optional in inputs_of(info):
        if widget(kind, options):
            if not rest and optional:
                continue
            assert rest, f"widgets_values ends before {name!r}"
            out[name] = rest.pop(0)
            if options.get("control_after_generate"):
                assert rest and rest.pop(0) in CONTROL_VALUES, f"{name!r} needs its control_after_generate value"
    assert not rest, f"extra widgets_values {rest}"
    return out


def check_value(workflow: str, name: str, kind: Any, options: dict, value: Any) -> None:
    where = f"{workflow}: {name}={value!r}"
    if kind == "INT":
        assert isinstance(value, int) and not isinstance(value, bool), where
    elif kind == "FLOAT":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
    elif kind == "STRING":
        assert isinstance(value, str), where
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), where
    if kind in ("INT", "FLOAT"):
        assert options.get("min", value) <= value <= options.get("max", value), f"{where} out of range"
    choices = kind if isinstance(kind, list) else options.get("options") if kind == "COMBO" else None
    if choices is not None and not (workflow.startswith(OFFICIAL_GRAPHS) and value in OFFICIAL.get(name, ())):
        assert value in choices, f"{where} not among {choices}"


def to_api(comfy, ui: dict) -> dict:
    """The API prompt the front end's graphToPrompt makes of a UI graph (widgets by name, links as [id, slot])."""
    links = {link[0]: link for link in ui["links"]}
    out = {}
    for node in ui["nodes"]:
        if node["type"] in FRONTEND_ONLY or node.get("mode", 0) != 0:
            continue
        info = comfy.object_info(node["type"])
        inputs = split_widgets(info, node["widgets_values"])
        for slot in node["inputs"]:
            if slot["link"] is not None:
                link = links[slot["link"]]
                inputs[slot["name"]] = [str(link[1]), link[2]]
        title = node.get("title") or info["display_name"]
        out[str(node["id"])] = {"inputs": inputs, "class_type": node["type"], "_meta": {"title": title}}
    return out


def test_the_expected_files_and_nothing_else():
    assert sorted(p.stem for p in WORKFLOWS.glob("*.json")) == sorted(NAMES)  # all listed as templates
    assert sorted(p.name for p in (WORKFLOWS / "api").glob("*.json")) == sorted(f"{n}_api.json" for n in NAMES)
    for name in NAMES:
        with Image.open(WORKFLOWS / f"{name}.jpg") as thumb:
            assert thumb.format == "JPEG" and min(thumb.size) >= 64


def test_llamagen_thumbnails_are_placeholders_not_pictures_of_shapes():
    """The LlamaGen graphs cannot run without the official files: their thumbnails are cards saying so (text on
    a flat background, not copies of a built-in graph's picture)."""
    thumbs = {name: (WORKFLOWS / f"{name}.jpg").read_bytes() for name in NAMES}
    for name in ("llamagen_t2i", "llamagen_c2i"):
        assert all(thumbs[name] != thumbs[other] for other in NAMES if other != name), f"{name}.jpg is a copy"
        with Image.open(WORKFLOWS / f"{name}.jpg") as thumb:
            pixels = np.asarray(thumb.convert("RGB"), dtype=int).reshape(-1, 3)
        background = np.median(pixels, axis=0)
        flat = (np.abs(pixels - background).max(1) <= 12).mean()
        assert background.max() < 64 and flat > 0.75, f"{name}.jpg: not mostly a dark flat card ({flat:.2f})"


def test_no_workflow_makes_the_front_end_reach_out():
    """properties.models would open ComfyUI's missing-models dialog, which fetches each file's size from its URL:
    the pack reaches out to nothing (the loaders' queue-time error says where a missing file goes)."""
    for name in NAMES:
        ui = load_ui(name)
        assert "models" not in ui and all("models" not in n.get("properties", {}) for n in ui["nodes"]), name


@pytest.mark.parametrize(("name", "root"), cases(NAMES))
def test_ui_workflow_fits_the_node_schemas(comfy, name, root):
    ui = load_ui(name, root)
    assert ui["version"] == 0.4 and isinstance(ui["groups"], list) and isinstance(ui["extra"], dict)
    nodes = {n["id"]: n for n in ui["nodes"]}
    assert len(nodes) == len(ui["nodes"]) and ui["last_node_id"] >= max(nodes)
    assert ui["last_link_id"] >= max((link[0] for link in ui["links"]), default=0)
    for node in ui["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        assert node["type"] in comfy.nodes.NODE_CLASS_MAPPINGS, f"{name}: unknown node type {node['type']}"
        info = comfy.object_info(node["type"])
        values = split_widgets(info, node["widgets_values"])
        schema = {n: (k, o, opt) for n, k, o, opt in inputs_of(info)}
        for key, value in values.items():
            check_value(name, key, schema[key][0], schema[key][1], value)
        sockets = [(n, k) for n, k, o, opt in inputs_of(info) if not widget(k, o)]
        if root == SAVED:  # the front end adds the optional sockets a node gained after the file was saved
            optional = {n for n, k, o, opt in inputs_of(info) if opt}
            have = {s["name"] for s in node["inputs"]}
            sockets = [(n, k) for n, k in sockets if n in have or n not in optional]
        assert [(s["name"], s["type"]) for s in node["inputs"] if "widget" not in s] == sockets, f"{name}: slots"
        widget_slots = [s["widget"]["name"] for s in node["inputs"] if "widget" in s]
        assert widget_slots in ([], list(values)) or root == SAVED, f"{name}: node {node['id']} widget slots"
        assert all(s["link"] is None for s in node["inputs"] if "widget" in s), "widgets converted to inputs"
        for slot in node["inputs"]:
            linked = slot["link"] is not None or schema[slot["name"]][2] or "widget" in slot
            assert linked, f"{name}: {node['id']}.{slot['name']} unlinked"
        assert [o["type"] for o in node["outputs"]] == list(info["output"])
    for link_id, src, src_slot, dst, dst_slot, kind in ui["links"]:
        out, slot = nodes[src]["outputs"][src_slot], nodes[dst]["inputs"][dst_slot]
        assert out["type"] == kind == slot["type"], f"{name}: link {link_id} joins {out['type']} to {slot['type']}"
        assert link_id in out["links"] and slot["link"] == link_id


@pytest.mark.parametrize("name", NAMES)
def test_ui_layout_is_readable(name):
    boxes = [(n["pos"][0], n["pos"][1], n["size"][0], n["size"][1]) for n in load_ui(name)["nodes"]]
    for i, (x, y, w, h) in enumerate(boxes):
        for x2, y2, w2, h2 in boxes[i + 1 :]:
            overlap = x < x2 + w2 and x2 < x + w and y - 30 < y2 + h2 and y2 - 30 < y + h  # 30 px title bars
            assert not overlap, f"{name}: nodes at {(x, y)} and {(x2, y2)} overlap"


@pytest.mark.parametrize(("name", "root"), cases(NAMES))
def test_api_file_mirrors_the_ui_graph(comfy, name, root):
    assert load_api(name, root) == to_api(comfy, load_ui(name, root))


@pytest.fixture(scope="module")
def official_stand_ins(comfy, tmp_path_factory):
    """Empty files, a bare T5 folder and a bare Janus folder under the documented official names, so the combos
    list them."""
    root = tmp_path_factory.mktemp("official")
    fp = comfy.folder_paths
    for folder, names in (("gptimg", OFFICIAL["ckpt_name"]), ("gptimg_vq", OFFICIAL["vq_name"])):
        (root / folder).mkdir()
        for file in names - {JANUS}:
            (root / folder / file).write_bytes(b"")
        fp.add_model_folder_path(folder, str(root / folder))
    (root / "gptimg" / JANUS).mkdir()
    (root / "gptimg" / JANUS / "config.json").write_text(json.dumps({"model_type": "janus"}))
    (root / "text_encoders" / "flan-t5-xl").mkdir(parents=True)
    (root / "text_encoders" / "flan-t5-xl" / "config.json").write_text(json.dumps({"model_type": "t5"}))
    fp.add_model_folder_path("text_encoders", str(root / "text_encoders"))
    yield
    for folder in ("gptimg", "gptimg_vq", "text_encoders"):
        fp.folder_names_and_paths[folder][0].remove(str(root / folder))


@pytest.mark.parametrize(("name", "root"), cases(NAMES))
def test_comfyui_validates_the_api_file(comfy, official_stand_ins, name, root):
    import asyncio

    prompt = load_api(name, root)
    valid, error, outputs, node_errors = asyncio.run(comfy.execution.validate_prompt("check", prompt, None))
    assert valid, (error, node_errors)
    assert outputs


@pytest.mark.parametrize(("name", "root"), cases(BUILTIN))
def test_builtin_workflow_runs_headless(comfy, name, root):
    history = comfy.run_prompt(load_api(name, root), Recorder())
    assert history["success"], history["messages"]
    (save,) = [k for k, v in load_api(name, root).items() if v["class_type"] == "SaveImage"]
    images = history["outputs"][save]["images"]
    assert images and all(im["type"] == "output" and im["subfolder"] == "gptimg" for im in images)
    with Image.open(Path(comfy.folder_paths.get_output_directory()) / "gptimg" / images[0]["filename"]) as im:
        assert im.size == (64, 64)
