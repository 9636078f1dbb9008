"""An onnxruntime backend for an export folder (onnx_export.py): a TokenModel (token_model.py) whose
DecodeState keeps each layer's keys and values as arrays between sessions' runs, and a VQ with the
VQModel's encode/decode. The decoders run on it unchanged. Needs `onnxruntime` (imported here only).

Tensors cross at the boundary: the decoders hand torch tensors in and get fp32 CPU torch tensors back.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .checkpoint import DTYPES, CheckpointError
from .checkpoint import ONNX_CONFIG as CONFIG_NAME
from .config import GPTConfig, VQConfig
from .onnx_graphs import kv_names
from .sampling import SamplingOptions
from .settings import Recommended
from .token_model import Condition
from .vq import _check_codes, _check_pixels, _chunk

FORMAT, VERSION = "gptimg-onnx", 1  # what onnx_export writes into it
PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


def is_export(path: str | os.PathLike) -> bool:
    """Whether path is a folder that onnx_export.export_onnx wrote."""
    return Path(path).is_dir() and (Path(path) / CONFIG_NAME).is_file()


def read_export(path: str | os.PathLike, where: str) -> dict:
    """The JSON of an export folder, checked for its format."""
    p = Path(path)
    if not is_export(p):
        raise CheckpointError(
            f"{where}: {str(p)!r} is a folder without {CONFIG_NAME}, so not an ONNX export; write one with "
            f"`python -m gptimg_core export-onnx --out {p}`"
        )
    meta = json.loads((p / CONFIG_NAME).read_text())
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(
            f"{where}: {p / CONFIG_NAME} is format {meta.get('format')!r} version {meta.get('version')!r}; "
            f"this gptimg reads {FORMAT} version {VERSION}: export it again"
        )
    return meta


def session(path: Path, device: str | torch.device, threads: int | None):
    """An onnxruntime InferenceSession on device's provider with `threads` intra-op threads (default:
    torch.get_num_threads(), the same as the PyTorch path)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ImportError("the ONNX backend needs onnxruntime: pip install onnxruntime") from e
    kind = torch.device(device).type
    if kind not in PROVIDERS:
        raise ValueError(f"the ONNX backend runs on 'cpu' or 'cuda', got device {str(device)!r}")
    if PROVIDERS[kind][0] not in ort.get_available_providers():
        raise ValueError(
            f"onnxruntime here has no {PROVIDERS[kind][0]} (it has {ort.get_available_providers()}); "
            f"install onnxruntime-gpu for CUDA, or use device='cpu'"
        )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=PROVIDERS[kind])


class OnnxGPT:
    """A LlamaGen GPT exported to ONNX (token_model.TokenModel): prefill and decode graphs of one dtype."""

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        dtype: str = "fp32",
        device: str | torch.device = "cpu",
        threads: int | None = None,
    ) -> None:
        folder = Path(folder)
        meta = read_export(folder, "load_gpt")
        self.cfg = GPTConfig.from_json(json.dumps(meta["gpt"]["config"]))
        graphs = meta["gpt"]["graphs"]
        if dtype not in graphs:
            raise ValueError(
                f"load_gpt: {folder} holds the GPT in {sorted(graphs)}, not {dtype}; export it with --dtype {dtype}"
            )
        self.dtype = dtype
        self.prefill_session = session(folder / graphs[dtype]["prefill"]["file"], device, threads)
        self.decode_session = session(folder / graphs[dtype]["decode"]["file"], device, threads)
        self.past_names = kv_names(self.cfg.n_layer, "past")
        self.recommended = recommended_from_json(meta["gpt"]["recommended"])  # the exported model's own
        if self.cfg.model_type == "c2i":
            self._null = torch.tensor(self.cfg.num_classes)
        else:
            self._null = torch.from_numpy(np.load(folder / meta["gpt"]["null_caption"]))

    # The TokenModel interface; the condition is checked as the PyTorch GPT checks it.
    device = torch.device("cpu")  # where the decoders' tensors live; the sessions may run elsewhere

    @property
    def kind(self) -> str:
        return self.cfg.model_type

    @property
    def grid(self) -> int:
        return self.cfg.grid

    @property
    def vocab_size(self) -> int:
        return self.cfg.vocab_size

    @property
    def null_condition(self) -> Tensor:
        """Class id num_classes (c2i) or the stored null caption (cls_token_num, caption_dim) fp32 (t2i)."""
        return self._null

    def condition(
        self,
        cond: Tensor,
        cond_mask: Tensor | None,
        uncond: Tensor | None,
        uncond_mask: Tensor | None,
        *,
        guided: bool,
        where: str,
    ) -> Condition:
        from .conditioning import prepare_condition

        return prepare_condition(self, cond, cond_mask, uncond, uncond_mask, guided=guided, where=where)

    def start(self, cond: Condition) -> OnnxState:
        return OnnxState(self, cond)

    def sampling_bytes(self, rows: int) -> int:
        """memory.sampling_bytes' terms for this config, with the cache counted twice: a run holds the past it
        was given and the present it returns."""
        cfg = self.cfg
        item = 2 if self.dtype == "fp16" else 4
        T, S = cfg.cls_token_num, cfg.cls_token_num + cfg.block_size
        kv = cfg.n_layer * 2 * rows * cfg.kv_heads * S * cfg.head_dim * item
        prefill = rows * T * (4 * cfg.dim + 3 * cfg.hidden) * item + rows * cfg.n_head * T * T * 4
        return 2 * kv + prefill + rows * cfg.vocab_size * 4 * 4


def recommended_to_json(r: Recommended) -> dict:
    """A model's Recommended as the export's JSON records it."""
    return dataclasses.asdict(r)


def recommended_from_json(d: dict) -> Recommended:
    edit = SamplingOptions(**d["edit"]) if d.get("edit") is not None else None
    return Recommended(SamplingOptions(**d["sample"]), best_of=d["best_of"], edit=edit, particles=d["particles"])


class OnnxState:
    """A decode state (token_model.DecodeState) over onnxruntime: the cache is each layer's keys and values
    (R, nkv, S, hd) as the last run returned them, kept as onnxruntime values (never copied to numpy on the
    way back in); feeding at t runs on the first cls + t of them."""

    per_row_positions = False  # the exported pass takes one start for every row

    def __init__(self, model: OnnxGPT, cond: Condition) -> None:
        self.model = model
        rows = cond.rows.detach().cpu()
        self.rows = rows.float().numpy() if rows.is_floating_point() else rows.long().numpy()
        R, cls = rows.shape[0], model.cfg.cls_token_num
        mask = cond.mask.detach().cpu().numpy() if cond.mask is not None else np.ones((R, cls), dtype=bool)
        self.mask = np.ascontiguousarray(mask, dtype=bool)  # (R, cls): False where a condition row is padding
        self.past: list = []  # onnxruntime OrtValues, k0, v0, k1, v1, ...
        self.length = 0  # sequence positions in the cache

    def _run(self, sess, feeds: dict[str, np.ndarray]) -> Tensor:
        from onnxruntime import OrtValue

        values = {k: OrtValue.ortvalue_from_numpy(v) for k, v in feeds.items()}
        if self.past:  # none at prefill
            values.update(zip(self.model.past_names, self.past, strict=True))
        logits, *self.past = sess.run_with_ort_values(None, values)
        self.length = self.past[0].shape()[2]
        return torch.from_numpy(logits.numpy())  # fp32

    def prefill(self) -> Tensor:
        return self._run(self.model.prefill_session, {"cond": self.rows, "cond_mask": self.mask})  # (R, V)

    def feed(self, tokens: Tensor, t: int, *, last_only: bool = False) -> Tensor:
        cls = self.model.cfg.cls_token_num
        if not self.past or not 0 <= t <= self.length - cls:
            fed = self.length - cls if self.past else "none (no prefill yet)"
            raise ValueError(f"OnnxState.feed: t={t}, but the cache holds image positions up to {fed}")
        if self.length != cls + t:  # a rewind (speculative decoding): drop what lies at positions >= t
            self._reshape(lambda p: p[:, :, : cls + t])
        feeds = {"tokens": tokens.detach().cpu().long().numpy(), "cond_mask": self.mask}
        out = self._run(self.model.decode_session, feeds)  # (R, n, V)
        return out[:, -1:] if last_only else out

    def keep_rows(self, n: int) -> None:
        self._reshape(lambda p: p[:n])
        self.mask = self.mask[:n]

    def _reshape(self, cut) -> None:
        """Apply cut to every cache array (a copy through numpy; only rewinds and keep_rows pay it)."""
        from onnxruntime import OrtValue

        self._arrays = [np.array(cut(p.numpy()), order="C") for p in self.past]  # own copies the OrtValues borrow
        self.past = [OrtValue.ortvalue_from_numpy(a) for a in self._arrays]
        self.length = self._arrays[0].shape[2]


class OnnxVQ:
    """An exported VQ tokenizer with VQModel's public API: encode, decode, downsample, codebook_size."""

    def __init__(
        self, folder: str | os.PathLike, *, device: str | torch.device = "cpu", threads: int | None = None
    ) -> None:
        folder = Path(folder)
        meta = read_export(folder, "load_vq")
        if "vq" not in meta:
            raise CheckpointError(f"load_vq: the export {folder} holds no VQ (exported with --no-vq); pass the VQ file")
        self.cfg = VQConfig.from_json(json.dumps(meta["vq"]["config"]))
        self.encoder = session(folder / meta["vq"]["encoder"]["file"], device, threads)
        self.decoder = session(folder / meta["vq"]["decoder"]["file"], device, threads)

    @property
    def downsample(self) -> int:
        return self.cfg.downsample

    @property
    def codebook_size(self) -> int:
        return self.cfg.codebook_size

    def encode(self, pixels: Tensor) -> Tensor:
        """Pixels (B, 3, H, W) in [-1, 1] -> codes LongTensor (B, H/ds, W/ds)."""
        _check_pixels(pixels, self.downsample, self.cfg.in_channels)
        x = pixels.detach().cpu().float()
        n = _chunk(tuple(x.shape[-2:]), torch.device("cpu"))  # as VQModel: a few images a call on CPU
        return torch.cat([torch.from_numpy(self.encoder.run(None, {"pixels": c.numpy()})[0]) for c in x.split(n)])

    def decode(self, codes: Tensor) -> Tensor:
        """Codes (B, h, w) -> pixels (B, 3, h*ds, w*ds) float32, unclamped."""
        _check_codes(codes, self.codebook_size)
        c = codes.detach().cpu().long()
        n = _chunk((c.shape[1] * self.downsample, c.shape[2] * self.downsample), torch.device("cpu"))
        return torch.cat([torch.from_numpy(self.decoder.run(None, {"codes": p.numpy()})[0]) for p in c.split(n)])


def load_onnx_gpt(
    folder: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    threads: int | None = None,
) -> OnnxGPT:
    """The GPT of an export folder on onnxruntime, in the graphs of that dtype (torch.float32 -> "fp32")."""
    if isinstance(dtype, torch.dtype):
        names = {v: k for k, v in DTYPES.items()}
        dtype = names.get(dtype, str(dtype))
    return OnnxGPT(folder, dtype=dtype, device=device, threads=threads)
