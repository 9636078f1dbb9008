"""Writes the example workflows (UI format workflows/<name>.json, API format workflows/api/<name>_api.json) from
the graphs below and the registered node schemas, and their thumbnails (workflows/<name>.jpg) by running each
graph headless on the built-in model. LlamaGen graphs need the official files, which are never shipped: their
thumbnails are placeholder cards saying so (drawn here). Their loader nodes carry no `properties.models`: the
front end's missing-models dialog would fetch each file's size from its URL, and the pack reaches out to nothing.

    OMP_NUM_THREADS=1 python -m tests.make_workflows          # from the repo root; needs the test ComfyUI

Uses the ComfyUI that the tests provision (tests/comfy/provision.py), imported in-process. Run it again after
the built-in model changes: the thumbnails are what these graphs produce.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parents[1] / "workflows"  # what it writes: the shipped workflow files
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_CONTROL = "fixed"  # control_after_generate: re-running a template reproduces its thumbnail
COLUMN_W, GAP = 440, 40  # column pitch; nodes are COLUMN_W - GAP wide
THUMB_CELL = 128  # px per image in a thumbnail

log = logging.getLogger("make_workflows")


@dataclass(frozen=True)
class L:
    """A link from output `slot` of node `node`."""

    node: int
    slot: int = 0


@dataclass
class N:
    id: int
    type: str
    inputs: dict[str, Any] = field(default_factory=dict)  # widget values and L links, by input name
    title: str | None = None


@dataclass(frozen=True)
class ModelFile:
    """An official file a LlamaGen graph needs, for its placeholder thumbnail."""

    name: str
    directory: str  # the folder under ComfyUI/models/


@dataclass
class Graph:
    nodes: list[N]
    note: str
    placeholder: str | None = None  # a title: the thumbnail is a card saying the graph needs files not shipped
    files: list[ModelFile] = field(default_factory=list)  # the official files it needs (on the placeholder)
    needs: str = "LlamaGen files"  # what the placeholder card says is missing


T2I_PROMPT = "a large red circle on a blue background"
INPAINT_PROMPT = "a small yellow star in the center on a blue background"  # in place of the original's small circle
SAMPLER = dict(seed=42, batch_size=4, cfg_interval=-1, cfg_schedule="constant")


# Every sampling widget at -1: the loaded model's recommended value (the built-in models' tuned ones, LlamaGen's
# and Janus' published ones), as a new node has them.
AUTO = -1
SAMPLING = C2I_SAMPLING = dict(cfg=AUTO, temperature=AUTO, top_k=AUTO, top_p=AUTO)
T2I_DRAWS = C2I_DRAWS = {"candidates": AUTO}
EDIT = dict(seed=7, **SAMPLING)
INPAINT = EDIT


# Janus-Pro graphs load a Hugging Face folder by this name from models/gptimg (never shipped, never downloaded);
# their settings are transformers' defaults (Janus' generation_config.json, GenerationConfig's top_k).
JANUS = "Janus-Pro-1B"
JANUS_PROMPT = "A close-up photo of a red fox sitting in fresh snow at sunrise, soft light, highly detailed."
JANUS_INPAINT_PROMPT = "A close-up photo of a snowy owl sitting in fresh snow at sunrise, soft light."
JANUS_SAMPLING = SAMPLING
JANUS_FILES = [ModelFile(f"{JANUS}/", "gptimg")]  # the Hugging Face folder


def t2i_front(prompt: str = "a red circle on a blue background", batch: int = 1) -> list[N]:
    """Nodes 1-6: built-in t2i model, text encoder, VQ, prompt, sampler -> tokens (5), decoded image (6)."""
    return [
        N(1, "GPTImgLoadModel", dict(ckpt_name="builtin t2i", dtype="auto", n_head=0, grid=0)),
        N(2, "GPTImgLoadTextEncoder", dict(encoder_name="builtin")),
        N(3, "GPTImgLoadVQ", dict(vq_name="builtin")),
        N(4, "GPTImgEncodePrompt", dict(text_encoder=L(2), model=L(1), prompt=prompt, negative_prompt="")),
        N(
            5,
            "GPTImgSampler",
            dict(model=L(1), positive=L(4), vq=L(3), **{**SAMPLER, "batch_size": batch}, **SAMPLING, **T2I_DRAWS),
        ),
        N(6, "GPTImgVQDecode", dict(vq=L(3), tokens=L(5))),
    ]


def save(node: int, image: L, name: str) -> N:
    return N(node, "SaveImage", dict(images=image, filename_prefix=f"gptimg/{name}"))


def preview(node: int, image: L, title: str) -> N:
    return N(node, "PreviewImage", dict(images=image), title=title)


GRAPHS: dict[str, Graph] = {
    "text_to_image": Graph(
        [*t2i_front(T2I_PROMPT, batch=4), save(7, L(6), "text_to_image")],
        "Text to image with the built-in shapes model (64x64). Prompts it knows: 'a red circle on a blue "
        "background', 'a small red circle in the top left on a blue background', 'a red circle and a green star "
        "on a white background'. Connect the VQ to the sampler for live previews.",
    ),
    "class_to_image": Graph(
        [
            N(1, "GPTImgLoadModel", dict(ckpt_name="builtin c2i", dtype="auto", n_head=0, grid=0)),
            N(3, "GPTImgLoadVQ", dict(vq_name="builtin")),
            N(4, "GPTImgClassLabel", {"model": L(1), "class": "orange triangle"}),
            N(5, "GPTImgSampler", dict(model=L(1), positive=L(4), vq=L(3), **SAMPLER, **C2I_SAMPLING, **C2I_DRAWS)),
            N(6, "GPTImgVQDecode", dict(vq=L(3), tokens=L(5))),
            save(7, L(6), "class_to_image"),
        ],
        "Class to image with the built-in class-conditional model: a class by name (e.g. 'red circle', 'blue "
        "square') or by id (0-47).",
    ),
    "inpainting": Graph(
        [
            *t2i_front("a small red circle in the center on a blue background"),
            preview(7, L(6), "original"),
            N(8, "GPTImgVQEncode", dict(vq=L(3), image=L(6), fit="crop")),
            N(9, "SolidMask", dict(value=0.0, width=64, height=64), title="keep everything..."),
            N(10, "SolidMask", dict(value=1.0, width=32, height=32), title="...but a 32x32 square"),
            N(11, "MaskComposite", dict(destination=L(9), source=L(10), x=16, y=16, operation="add")),
            N(
                12,
                "GPTImgTokenMaskPreview",
                dict(image=L(6), mask=L(11), vq=L(3), mask_mode="any", threshold=0.5, grow=0),
            ),
            N(
                13,
                "GPTImgEncodePrompt",
                dict(text_encoder=L(2), model=L(1), prompt=INPAINT_PROMPT, negative_prompt=""),
            ),
            N(
                14,
                "GPTImgTokenInpaint",
                dict(
                    model=L(1),
                    tokens=L(8),
                    mask=L(11),
                    positive=L(13),
                    vq=L(3),
                    **INPAINT,
                    mask_mode="any",
                    threshold=0.5,
                    grow=0,
                    candidates=AUTO,
                    passes=1,
                ),
            ),  # fmt: skip
            N(15, "GPTImgVQDecode", dict(vq=L(3), tokens=L(14))),
            save(16, L(15), "inpainting"),
        ],
        "Token inpainting: the tokens under the mask are regenerated, all others stay exactly as they were. Token "
        "Mask Preview shows which token cells the mask selects. Replace the generated image with Load Image to "
        "edit your own (64x64 for the built-in model).",
    ),
    "outpainting": Graph(
        [
            *t2i_front("a small red circle in the top right on a blue background"),
            preview(7, L(6), "original"),
            N(8, "GPTImgOutpaint", dict(model=L(1), tokens=L(5), positive=L(4), vq=L(3), top=0, left=-3, **EDIT)),
            N(9, "GPTImgVQDecode", dict(vq=L(3), tokens=L(8))),
            save(10, L(9), "outpainting"),
        ],
        "Outpaint / extend canvas: the image is shifted 3 token columns to the left (left = -3) and the revealed "
        "columns on the right are generated; the kept tokens do not change.",
    ),
    "variations": Graph(
        [
            *t2i_front(T2I_PROMPT),
            preview(7, L(6), "original"),
            N(
                8,
                "GPTImgVariations",
                dict(model=L(1), tokens=L(5), positive=L(4), vq=L(3), keep_rows=3, batch_size=4, **EDIT),
            ),
            N(9, "GPTImgVQDecode", dict(vq=L(3), tokens=L(8))),
            save(10, L(9), "variations"),
        ],
        "Variations: keep the top token rows of an image and regenerate the rest, four times.",
    ),
    "img2img": Graph(
        [
            *t2i_front("a red circle on a blue background"),
            preview(7, L(6), "original"),
            N(8, "GPTImgVQEncode", dict(vq=L(3), image=L(6), fit="crop")),
            N(9, "GPTImgEncodePrompt", dict(text_encoder=L(2), model=L(1), prompt=T2I_PROMPT, negative_prompt="")),
            N(10, "GPTImgImg2Img", dict(model=L(1), tokens=L(8), positive=L(9), vq=L(3), strength=0.6, **EDIT)),
            N(11, "GPTImgVQDecode", dict(vq=L(3), tokens=L(10))),
            save(12, L(11), "img2img"),
        ],
        "Token img2img: regenerate a random `strength` fraction of an image's tokens under a new prompt. Replace "
        "the generated image with Load Image to start from your own.",
    ),
    "vq_round_trip": Graph(
        [
            N(1, "GPTImgLoadModel", dict(ckpt_name="builtin c2i", dtype="auto", n_head=0, grid=0)),
            N(3, "GPTImgLoadVQ", dict(vq_name="builtin")),
            N(4, "GPTImgClassLabel", {"model": L(1), "class": "blue square"}),
            N(5, "GPTImgSampler", dict(model=L(1), positive=L(4), vq=L(3), **SAMPLER, **C2I_SAMPLING, **C2I_DRAWS)),
            N(6, "GPTImgVQDecode", dict(vq=L(3), tokens=L(5))),
            preview(7, L(6), "original"),
            N(8, "GPTImgVQEncode", dict(vq=L(3), image=L(6), fit="crop")),
            N(9, "GPTImgVQDecode", dict(vq=L(3), tokens=L(8))),
            save(10, L(9), "vq_round_trip"),
        ],
        "VQ round trip: image -> tokens -> image. Shows what the tokenizer keeps; swap the generated image for "
        "Load Image to try your own (fit crops or resizes to a multiple of the VQ's downsample).",
    ),
    "llamagen_t2i": Graph(
        [
            N(1, "GPTImgLoadModel", dict(ckpt_name="t2i_XL_stage1_256.pt", dtype="auto", n_head=0, grid=0)),
            N(2, "GPTImgLoadTextEncoder", dict(encoder_name="flan-t5-xl")),
            N(3, "GPTImgLoadVQ", dict(vq_name="vq_ds16_t2i.pt")),
            N(
                4,
                "GPTImgEncodePrompt",
                dict(
                    text_encoder=L(2),
                    model=L(1),
                    negative_prompt="",
                    prompt="A photo of a red fox sitting in a snowy forest at sunrise, highly detailed.",
                ),
            ),  # fmt: skip
            N(
                5,
                "GPTImgSampler",
                dict(model=L(1), positive=L(4), vq=L(3), **SAMPLER, cfg=7.5, temperature=1.0, top_k=1000, top_p=1.0),
            ),
            N(6, "GPTImgVQDecode", dict(vq=L(3), tokens=L(5))),
            save(7, L(6), "llamagen_t2i"),
        ],
        "LlamaGen text-to-image (official files, not included: nothing is ever downloaded). Put "
        "t2i_XL_stage1_256.pt in models/gptimg/, vq_ds16_t2i.pt in models/gptimg_vq/ and the flan-t5-xl/ folder "
        "(config.json, tokenizer, weights) in models/text_encoders/, then refresh (R). 256x256 images; LlamaGen's "
        "defaults: cfg 7.5, top_k 1000.",
        placeholder="LlamaGen text to image",
        files=[ModelFile("t2i_XL_stage1_256.pt", "gptimg"), ModelFile("vq_ds16_t2i.pt", "gptimg_vq")],
    ),
    "llamagen_c2i": Graph(
        [
            N(1, "GPTImgLoadModel", dict(ckpt_name="c2i_L_384.pt", dtype="auto", n_head=0, grid=0)),
            N(3, "GPTImgLoadVQ", dict(vq_name="vq_ds16_c2i.pt")),
            N(4, "GPTImgClassLabel", {"model": L(1), "class": "golden retriever"}),
            N(
                5,
                "GPTImgSampler",
                dict(model=L(1), positive=L(4), vq=L(3), **SAMPLER, cfg=4.0, temperature=1.0, top_k=2000, top_p=1.0),
            ),
            N(6, "GPTImgVQDecode", dict(vq=L(3), tokens=L(5))),
            save(7, L(6), "llamagen_c2i"),
        ],
        "LlamaGen class-to-image on ImageNet classes (official files, not included). Put c2i_L_384.pt (or "
        "c2i_B_256.pt) in models/gptimg/ and vq_ds16_c2i.pt in models/gptimg_vq/, then refresh (R). Classes by "
        "ImageNet name ('golden retriever') or id (207). 384x384 images (24x24 tokens); LlamaGen's defaults: "
        "cfg 4.0, top_k 2000.",
        placeholder="LlamaGen class to image",
        files=[ModelFile("c2i_L_384.pt", "gptimg"), ModelFile("vq_ds16_c2i.pt", "gptimg_vq")],
    ),
    "janus_pro_t2i": Graph(
        [
            N(1, "GPTImgLoadModel", dict(ckpt_name=JANUS, dtype="auto", n_head=0, grid=0)),
            N(2, "GPTImgLoadTextEncoder", dict(encoder_name=JANUS)),
            N(3, "GPTImgLoadVQ", dict(vq_name=JANUS)),
            N(4, "GPTImgEncodePrompt", dict(text_encoder=L(2), model=L(1), prompt=JANUS_PROMPT, negative_prompt="")),
            N(5, "GPTImgSampler", dict(model=L(1), positive=L(4), vq=L(3), **SAMPLER, **JANUS_SAMPLING)),
            N(6, "GPTImgVQDecode", dict(vq=L(3), tokens=L(5))),
            save(7, L(6), "janus_pro_t2i"),
        ],
        "Janus-Pro text-to-image (not included: nothing is ever downloaded). Put the Hugging Face folder "
        "deepseek-community/Janus-Pro-1B (or -7B) as models/gptimg/Janus-Pro-1B/ (config.json, "
        "generation_config.json, model*.safetensors, tokenizer files, chat_template.jinja), then refresh (R); the "
        "three loaders take the same folder. 384x384 images (24x24 tokens); transformers' defaults: cfg 5, "
        "temperature 1, top_k 50. An empty negative prompt is Janus' own null prompt.",
        placeholder="Janus-Pro text to image",
        files=JANUS_FILES,
        needs="the Janus-Pro folder",
    ),
    "janus_pro_inpainting": Graph(
        [
            N(1, "GPTImgLoadModel", dict(ckpt_name=JANUS, dtype="auto", n_head=0, grid=0)),
            N(2, "GPTImgLoadTextEncoder", dict(encoder_name=JANUS)),
            N(3, "GPTImgLoadVQ", dict(vq_name=JANUS)),
            N(4, "GPTImgEncodePrompt", dict(text_encoder=L(2), model=L(1), prompt=JANUS_PROMPT, negative_prompt="")),
            N(
                5,
                "GPTImgSampler",
                dict(model=L(1), positive=L(4), vq=L(3), **{**SAMPLER, "batch_size": 1}, **JANUS_SAMPLING),
            ),
            N(6, "GPTImgVQDecode", dict(vq=L(3), tokens=L(5))),
            preview(7, L(6), "original"),
            N(8, "GPTImgVQEncode", dict(vq=L(3), image=L(6), fit="crop")),
            N(9, "SolidMask", dict(value=0.0, width=384, height=384), title="keep everything..."),
            N(10, "SolidMask", dict(value=1.0, width=192, height=192), title="...but a 192x192 square"),
            N(11, "MaskComposite", dict(destination=L(9), source=L(10), x=96, y=96, operation="add")),
            N(
                12,
                "GPTImgTokenMaskPreview",
                dict(image=L(6), mask=L(11), vq=L(3), mask_mode="any", threshold=0.5, grow=0),
            ),
            N(
                13,
                "GPTImgEncodePrompt",
                dict(text_encoder=L(2), model=L(1), prompt=JANUS_INPAINT_PROMPT, negative_prompt=""),
            ),
            N(
                14,
                "GPTImgTokenInpaint",
                dict(
                    model=L(1),
                    tokens=L(8),
                    mask=L(11),
                    positive=L(13),
                    seed=7,
                    **JANUS_SAMPLING,
                    mask_mode="any",
                    threshold=0.5,
                    grow=0,
                    candidates=4,
                    passes=1,
                ),
            ),  # fmt: skip
            N(15, "GPTImgVQDecode", dict(vq=L(3), tokens=L(14))),
            save(16, L(15), "janus_pro_inpainting"),
        ],
        "Janus-Pro token inpainting (model not included; see the Janus-Pro text-to-image workflow for the folder). "
        "The 24x24 tokens under the mask are regenerated under the new prompt, all others stay exactly as they "
        "were; 4 candidate fills are weighed by the kept tokens after them. Replace the generated image with Load "
        "Image (384x384) to edit your own.",
        placeholder="Janus-Pro inpainting",
        files=JANUS_FILES,
        needs="the Janus-Pro folder",
    ),
}


def is_widget(kind: Any, options: dict) -> bool:
    """How the front end decides: a value widget for these types (or an options list), unless forceInput."""
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not options.get("forceInput")


def schema_inputs(info: dict) -> list[tuple[str, Any, dict, bool]]:
    """(name, type, options, optional) in the front end's order: required then optional."""
    out = []
    for section in ("required", "optional"):
        for name in info["input_order"].get(section, []):
            spec = info["input"][section][name]
            out.append((name, spec[0], spec[1] if len(spec) > 1 else {}, section == "optional"))
    return out


def widgets_values(info: dict, values: dict[str, Any]) -> list[Any]:
    """widgets_values as the front end saves them: schema order; a seed-like INT adds its control value."""
    out = []
    for name, kind, options, _ in schema_inputs(info):
        if is_widget(kind, options):
            out.append(values.get(name, options.get("default")))
            if options.get("control_after_generate"):
                out.append(SEED_CONTROL)
    return out


def _depths(graph: Graph) -> dict[int, int]:
    by_id = {n.id: n for n in graph.nodes}
    depth: dict[int, int] = {}

    def d(i: int) -> int:
        if i not in depth:
            srcs = [v.node for v in by_id[i].inputs.values() if isinstance(v, L)]
            depth[i] = 1 + max((d(s) for s in srcs), default=-1)
        return depth[i]

    for n in graph.nodes:
        d(n.id)
    return depth


def _height(info: dict, node: N) -> int:
    ins = schema_inputs(info)
    sockets = sum(not is_widget(k, o) for _, k, o, _ in ins)
    widgets = sum(is_widget(k, o) + bool(o.get("control_after_generate")) for _, k, o, _ in ins)
    multiline = sum(bool(o.get("multiline")) for _, k, o, _ in ins)
    images = 220 if node.type in ("PreviewImage", "SaveImage", "GPTImgTokenMaskPreview") else 0
    return 30 + 22 * max(sockets, len(info["output"])) + 26 * widgets + 70 * multiline + images


def _zoom(columns: int) -> float:
    """Initial zoom: fit about 1800 px of graph, but not below 0.65 (the front end hides text under 0.6)."""
    return round(max(0.65, min(1.0, 1800 / (COLUMN_W * columns))), 2)


def build(comfy: Any, name: str, graph: Graph) -> tuple[dict, dict]:
    """(UI-format workflow, API-format prompt) for one graph."""
    infos = {n.type: comfy.object_info(n.type) for n in graph.nodes}
    depth = _depths(graph)
    order = sorted(graph.nodes, key=lambda n: (depth[n.id], n.id))
    links: list[list[Any]] = []
    out_links: dict[tuple[int, int], list[int]] = {}
    in_link: dict[tuple[int, str], int] = {}
    for n in order:
        names = [x[0] for x in schema_inputs(infos[n.type])]
        for key, v in n.inputs.items():
            if key not in names:
                raise ValueError(f"{name}: node {n.id} ({n.type}) has no input {key!r}")
            if isinstance(v, L):
                src = next(s for s in graph.nodes if s.id == v.node)
                link_id = len(links) + 1
                slot = names.index(key)  # rewritten below to the socket index
                links.append([link_id, v.node, v.slot, n.id, slot, infos[src.type]["output"][v.slot]])
                out_links.setdefault((v.node, v.slot), []).append(link_id)
                in_link[(n.id, key)] = link_id
    ui_nodes, y_next = [], {}
    api: dict[str, dict] = {}
    for i, n in enumerate(order):
        info = infos[n.type]
        col = depth[n.id]
        width = COLUMN_W - GAP
        height = _height(info, n)
        x, y = 40 + col * COLUMN_W, y_next.get(col, 40)
        y_next[col] = y + height + GAP + 40
        inputs = []  # as the front end saves them: the sockets, then an unlinked slot per widget
        for key, kind, options, optional in schema_inputs(info):
            if is_widget(kind, options):
                continue
            link = in_link.get((n.id, key))
            if link is not None:
                links[link - 1][4] = len(inputs)
            inputs.append({"name": key, "type": kind, "link": link, **({"shape": 7} if optional else {})})
        for key, kind, options, _ in schema_inputs(info):
            if is_widget(kind, options):
                slot_type = "COMBO" if isinstance(kind, list) else kind
                inputs.append({"name": key, "type": slot_type, "widget": {"name": key}, "link": None})
        outputs = [
            {
                "name": info["output_name"][s],
                "type": t,
                "links": out_links.get((n.id, s), []),
                **({"slot_index": s} if out_links.get((n.id, s)) else {}),
            }
            for s, t in enumerate(info["output"])
        ]
        node = {
            "id": n.id,
            "type": n.type,
            "pos": [x, y],
            "size": [width, height],
            "flags": {},
            "order": i,
            "mode": 0,
            "inputs": inputs,
            "outputs": outputs,
            "properties": {"Node name for S&R": n.type},
            "widgets_values": widgets_values(info, n.inputs),
        }
        if n.title:
            node["title"] = n.title
        ui_nodes.append(node)
        api_inputs: dict[str, Any] = {}
        for key, kind, options, _ in schema_inputs(info):
            if is_widget(kind, options):
                api_inputs[key] = n.inputs.get(key, options.get("default"))
        for key, v in n.inputs.items():
            if isinstance(v, L):
                api_inputs[key] = [str(v.node), v.slot]
        api[str(n.id)] = {
            "inputs": api_inputs,
            "class_type": n.type,
            "_meta": {"title": n.title or info["display_name"]},
        }
    note_id = max(n.id for n in graph.nodes) + 1
    ui_nodes.append(
        {
            "id": note_id,
            "type": "Note",
            "pos": [40, max(y_next.values())],
            "size": [COLUMN_W * 2 - GAP, 120],
            "flags": {},
            "order": len(order),
            "mode": 0,
            "inputs": [],
            "outputs": [],
            "properties": {},
            "widgets_values": [graph.note],
            "color": "#432",
            "bgcolor": "#653",
        }
    )
    ui = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"gptimg/workflows/{name}")),
        "revision": 0,
        "last_node_id": note_id,
        "last_link_id": len(links),
        "nodes": ui_nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {
            "ds": {"scale": _zoom(max(depth.values()) + 1), "offset": [80, 70]}
        },  # clear of the side and top bars
        "version": 0.4,
    }
    return ui, api


def placeholder_card(
    title: str, files: list[ModelFile], needs: str = "LlamaGen files", size: int = 2 * THUMB_CELL + 4
) -> Image.Image:
    """A thumbnail for a graph whose files are not shipped: a plain card that says so, not a picture."""
    card = Image.new("RGB", (size, size), (38, 38, 44))
    draw = ImageDraw.Draw(card)
    draw.rectangle((3, 3, size - 4, size - 4), outline=(200, 160, 60), width=3)
    big, small = ImageFont.load_default(size=21), ImageFont.load_default(size=13)
    lines = [(title, small, (220, 220, 220)), ("needs", big, (240, 190, 70)), (needs, big, (240, 190, 70))]
    lines += [(f"{f.name} -> models/{f.directory}/", small, (190, 190, 190)) for f in files]
    lines.append(("not included; nothing is downloaded", small, (150, 150, 150)))
    heights = [draw.textbbox((0, 0), text, font=font)[3] + 10 for text, font, _ in lines]
    y = (size - sum(heights)) // 2
    for (text, font, colour), h in zip(lines, heights, strict=True):
        draw.text((size // 2, y), text, font=font, fill=colour, anchor="mt")
        y += h
    return card


def thumbnail(comfy: Any, server: Any, name: str, graph: Graph, api: dict) -> Image.Image:
    """Run the graph headless on the built-in model; tile what its PreviewImage and SaveImage nodes show (or a
    placeholder card for a graph that needs LlamaGen's files)."""
    if graph.placeholder is not None:
        return placeholder_card(graph.placeholder, graph.files, graph.needs)
    prompt = json.loads(json.dumps(api))
    history = comfy.run_prompt(prompt, server)
    if not history["success"]:
        raise RuntimeError(f"{name}: the graph failed: {history['messages']}")
    folders = {"output": comfy.folder_paths.get_output_directory(), "temp": comfy.folder_paths.get_temp_directory()}
    shown = sorted((int(k), k) for k, v in prompt.items() if v["class_type"] in ("PreviewImage", "SaveImage"))
    cells = [
        Image.open(Path(folders[im["type"]]) / im["subfolder"] / im["filename"])
        .convert("RGB")
        .resize((THUMB_CELL, THUMB_CELL), Image.NEAREST)
        for _, k in shown
        for im in history["outputs"][k]["images"]
    ]
    cols = 2 if len(cells) <= 4 else 3
    rows = -(-len(cells) // cols) if len(cells) > 1 else 1
    cols = min(cols, len(cells))
    step = THUMB_CELL + 4
    sheet = Image.new("RGB", (cols * step - 4, rows * step - 4), (32, 32, 32))
    for i, cell in enumerate(cells):
        r, c = divmod(i, cols)
        sheet.paste(cell, (c * step, r * step))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-thumbnails", action="store_true", help="only write the JSON files")
    parser.add_argument("--only", nargs="*", default=None, help="write only these graphs (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from tests.comfy.provision import ensure_comfyui
    from tests.nodes.comfy_inprocess import Comfy, Recorder

    comfy = Comfy(ensure_comfyui(), Path(tempfile.mkdtemp(prefix="gptimg-workflows-")))
    (HERE / "api").mkdir(exist_ok=True)
    for name, graph in GRAPHS.items():
        if args.only is not None and name not in args.only:
            continue
        ui, api = build(comfy, name, graph)
        (HERE / f"{name}.json").write_text(json.dumps(ui, indent=2) + "\n")
        (HERE / "api" / f"{name}_api.json").write_text(json.dumps(api, indent=2) + "\n")
        if not args.no_thumbnails:
            thumbnail(comfy, Recorder(), name, graph, api).save(HERE / f"{name}.jpg", quality=90)
        log.info("wrote %s", name)


if __name__ == "__main__":
    main()
