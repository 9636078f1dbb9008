"""Export a GPT (prefill and decode graphs, explicit KV cache) and a VQ (encoder, decoder) to ONNX, with a
JSON beside them that onnx_backend.py reads. Needs `onnx` and `onnxscript` (imported here only).

Every graph goes through the dynamo-based `torch.onnx.export(..., dynamo=True)`; the TorchScript exporter is
the fallback for a graph dynamo cannot export (logged, and recorded per graph in the JSON).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .builtin import builtin_path
from .checkpoint import DTYPES, load_gpt, load_vq
from .gpt import GPT
from .onnx_backend import CONFIG_NAME, FORMAT, VERSION, recommended_to_json
from .onnx_graphs import Decode, Prefill, VQDecode, VQEncode, kv_names
from .vq import VQModel

log = logging.getLogger(__name__)

OPSET = 18  # the dynamo exporter's default; onnxruntime 1.16+ runs it
# bf16 exports, but onnxruntime's CPU provider has no bf16 kernels (no Mul, onnxruntime 1.32): not offered.
DTYPES_ONNX = ("fp32", "fp16")
NULL_CAPTION = "null_caption.npy"  # a t2i GPT's stored null condition (uncond_embedding), fp32


def _axes(names: Sequence[str], axes: dict[int, str]) -> dict[str, dict[int, str]]:
    return {name: axes for name in names}


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], dynamic: dict) -> str:
    """Write module(*args) to path as ONNX -> the exporter that did it ("dynamo" or "torchscript").

    dynamic: input name -> {axis: dim name}, for both exporters (dynamo takes it as dynamic_shapes, matched
    to the forward's arguments by position, a list argument flattened)."""
    import onnx
    from torch.export import Dim

    dims: dict[str, Dim] = {}

    def spec(name: str) -> dict:
        return {a: dims.setdefault(d, Dim(d)) for a, d in dynamic.get(name, {}).items()}

    shapes, i = [], 0
    for a in args:  # dynamic_shapes mirrors the arguments' structure
        if isinstance(a, list):
            shapes.append([spec(n) for n in inputs[i : i + len(a)]])
            i += len(a)
        else:
            shapes.append(spec(inputs[i]))
            i += 1
    common = dict(input_names=inputs, output_names=outputs, opset_version=OPSET, verbose=False)
    try:
        torch.onnx.export(module, args, str(path), dynamo=True, dynamic_shapes=tuple(shapes), **common)
        exporter = "dynamo"
    except Exception as e:  # the exporter raises many types; the fallback is logged and recorded, never silent
        log.warning("export_onnx: the dynamo exporter failed on %s (%s); using the TorchScript exporter", path.name, e)
        torch.onnx.export(module, args, str(path), dynamo=False, dynamic_axes=dynamic, **common)
        exporter = "torchscript"
    onnx.checker.check_model(str(path))
    return exporter


def share_weights(graphs: list[Path], data: Path, min_bytes: int = 1024) -> None:
    """Move the weights of several graphs into one external data file, each distinct tensor stored once (the
    prefill and decode graphs hold the same layers), and delete the files they used before. Tensors under
    min_bytes stay inside their graph."""
    import hashlib

    import onnx
    from onnx.external_data_helper import set_external_data

    offsets: dict[bytes, tuple[int, int]] = {}  # sha256 of the bytes -> (offset, length) in data
    old = set()
    with open(data, "wb") as f:
        for path in graphs:
            old |= {path.parent / e.value for t in _initializers(onnx.load(str(path), load_external_data=False))
                    for e in t.external_data if e.key == "location"}  # fmt: skip
            model = onnx.load(str(path))  # with every weight read in
            for t in _initializers(model):
                if len(t.raw_data) < min_bytes:
                    continue
                key = hashlib.sha256(t.raw_data).digest()
                if key not in offsets:
                    f.seek(0, os.SEEK_END)
                    f.write(b"\0" * (-f.tell() % 64))  # aligned, as onnx writes external data
                    offsets[key] = (f.tell(), len(t.raw_data))
                    f.write(t.raw_data)
                set_external_data(t, data.name, *offsets[key])
                t.ClearField("raw_data")
                t.data_location = onnx.TensorProto.EXTERNAL
            onnx.save(model, str(path))
    for p in old - {data}:
        p.unlink()


def _initializers(model) -> list:
    return list(model.graph.initializer)


def _graph_entry(path: Path, exporter: str) -> dict:
    """A graph's JSON entry: its file, its size in bytes, and the exporter used."""
    return {"file": path.name, "bytes": path.stat().st_size, "exporter": exporter}


def export_gpt(gpt: GPT, out_dir: Path, dtype: str) -> dict:
    """Prefill and decode graphs of gpt in one dtype ("fp32" or "fp16") -> their JSON entry."""
    cfg, L = gpt.cfg, gpt.cfg.n_layer
    model = copy.deepcopy(gpt).to("cpu", DTYPES[dtype]).eval()  # the caller's model is left as it is
    rows, cls = 2, cfg.cls_token_num  # example sizes >= 2: the exporter would specialise a dimension of 1
    if cfg.model_type == "c2i":
        cond = torch.arange(rows)
    else:
        cond = torch.randn(rows, cls, cfg.caption_dim)
    mask = torch.ones(rows, cls, dtype=torch.bool)
    present = kv_names(L, "present")
    exporters = {}
    path = out_dir / f"gpt_prefill_{dtype}.onnx"
    dyn = {"cond": {0: "rows"}, "cond_mask": {0: "rows"}}
    exporters[path] = _export(
        Prefill(model).eval(), (cond, mask), path, ["cond", "cond_mask"], ["logits", *present], dyn
    )
    past = [torch.zeros(rows, cfg.kv_heads, cls + 2, cfg.head_dim, dtype=DTYPES[dtype]) for _ in range(2 * L)]
    tokens = torch.zeros(rows, 2, dtype=torch.long)
    path = out_dir / f"gpt_decode_{dtype}.onnx"
    names = ["tokens", "cond_mask", *kv_names(L, "past")]
    dyn = {"tokens": {0: "rows", 1: "new"}, "cond_mask": {0: "rows"}, **_axes(names[2:], {0: "rows", 2: "past"})}
    exporters[path] = _export(Decode(model).eval(), (tokens, mask, past), path, names, ["logits", *present], dyn)
    return _shared(exporters, out_dir / f"gpt_{dtype}.weights", ("prefill", "decode"))


def _shared(exporters: dict[Path, str], weights: Path, names: tuple[str, ...]) -> dict:
    """Put the graphs' weights in one file (share_weights), check each graph again -> their JSON entry."""
    import onnx

    share_weights(list(exporters), weights)
    entry = {"weights": {"file": weights.name, "bytes": weights.stat().st_size}}
    for name, (path, exporter) in zip(names, exporters.items(), strict=True):
        onnx.checker.check_model(str(path))
        entry[name] = _graph_entry(path, exporter)
    return entry


def export_vq(vq: VQModel, out_dir: Path) -> dict:
    """Encoder (pixels -> codes) and decoder (codes -> pixels) graphs, fp32, any batch and image size."""
    ds, exporters = vq.downsample, {}
    path = out_dir / "vq_encoder.onnx"
    pixels = torch.zeros(2, 3, 2 * ds, 3 * ds)
    dyn = {"pixels": {0: "batch", 2: "height", 3: "width"}}
    exporters[path] = _export(VQEncode(vq).eval(), (pixels,), path, ["pixels"], ["codes"], dyn)
    path = out_dir / "vq_decoder.onnx"
    codes = torch.zeros(2, 2, 3, dtype=torch.long)
    dyn = {"codes": {0: "batch", 1: "h", 2: "w"}}
    exporters[path] = _export(VQDecode(vq).eval(), (codes,), path, ["codes"], ["pixels"], dyn)
    return _shared(exporters, out_dir / "vq.weights", ("encoder", "decoder"))


def export_onnx(
    gpt: GPT | str | os.PathLike | None = None,
    vq: VQModel | str | os.PathLike | None = None,
    out_dir: str | os.PathLike = "onnx",
    *,
    dtype: str | Sequence[str] = "fp32",
    with_vq: bool = True,
    n_head: int | None = None,
    grid: int | None = None,
) -> Path:
    """Export a GPT and its VQ (models or checkpoint paths; None: the built-in t2i and VQ) to out_dir ->
    the JSON's path. dtype: the GPT's weight precisions, "fp32" and/or "fp16" (the VQ is fp32)."""
    import onnx

    dtypes = [dtype] if isinstance(dtype, str) else list(dtype)
    if not dtypes or any(d not in DTYPES_ONNX for d in dtypes):
        raise ValueError(f"export_onnx: dtype must be one or more of {list(DTYPES_ONNX)}, got {dtype!r}")
    if not isinstance(gpt, GPT):
        gpt = load_gpt(gpt if gpt is not None else builtin_path("t2i"), n_head=n_head, grid=grid)
    if with_vq and not isinstance(vq, VQModel):
        vq = load_vq(vq if vq is not None else builtin_path("vq"))
    if with_vq and vq.codebook_size != gpt.cfg.vocab_size:
        raise ValueError(
            f"export_onnx: the VQ has {vq.codebook_size} codes but the GPT's vocabulary is {gpt.cfg.vocab_size}; "
            f"pass the VQ the GPT was trained with, or with_vq=False (CLI: --no-vq)"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta: dict = {"format": FORMAT, "version": VERSION, "opset": OPSET, "torch": torch.__version__}
    meta["onnx"] = onnx.__version__
    graphs = {d: export_gpt(gpt, out, d) for d in dtypes}
    meta["gpt"] = {"config": dataclasses.asdict(gpt.cfg), "recommended": recommended_to_json(gpt.recommended)}
    meta["gpt"]["graphs"] = graphs
    if gpt.cfg.model_type == "t2i":
        np.save(out / NULL_CAPTION, gpt.cls_embedding.uncond_embedding.float().cpu().numpy())
        meta["gpt"]["null_caption"] = NULL_CAPTION
    if with_vq:
        vq = copy.deepcopy(vq).to("cpu", torch.float32).eval()
        meta["vq"] = {"config": dataclasses.asdict(vq.cfg), **export_vq(vq, out)}
    path = out / CONFIG_NAME
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path
