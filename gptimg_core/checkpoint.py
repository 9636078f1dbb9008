"""Reading checkpoint files: LlamaGen pickles (.pt/.pth/.bin) and safetensors, wrappers, config
inference from tensor shapes, strict loading, and conversion to our self-describing safetensors."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from . import compiled
from .builtin import BUILTIN_RECOMMENDED, is_builtin
from .checks import all_finite, check_int
from .config import GPTConfig, VQConfig, find_multiple, preset_heads
from .gpt import GPT
from .janus import JanusModel, JanusVQ, load_janus_model, load_janus_vq
from .janus.folder import check_folder
from .quant import cpu_has_native_bf16, quantize_int8
from .vq import VQModel

if TYPE_CHECKING:
    from .onnx_backend import OnnxGPT, OnnxVQ

log = logging.getLogger(__name__)

FORMAT = "gptimg"  # safetensors metadata "format" of files we write
# The weight precisions loaders take, by the names users pick (node inputs, --dtype flags).
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# GPTs also take weight-only int8 (quant.py): int8 matrices with per-channel scales, bf16 activations.
GPT_DTYPES = (*DTYPES, "int8")
VQ_DTYPES = ("fp32", "bf16")  # the VQ precisions measured (README, VQ decode); bf16 keeps fp32's exponent range
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
# Buffers some LlamaGen files carry that are not weights.
_DROP = re.compile(r"(^|\.)(freqs_cis|causal_mask|kv_cache\.[kv]_cache|codebook_used)$")
# Grid side of the official LlamaGen releases whose image size is not 256 (not readable from shapes).
OFFICIAL_GRIDS = {
    "c2i_B_384.pt": 24, "c2i_L_384.pt": 24, "c2i_XL_384.pt": 24, "c2i_XXL_384.pt": 24,
    "c2i_3B_384.pt": 24, "t2i_XL_stage2_512.pt": 32,
}  # fmt: skip
DEFAULT_GRID = 16
ONNX_CONFIG = "gptimg_onnx.json"  # the file that marks a folder as an ONNX export (onnx_export.py)
# Largest token grid side a file or an argument may ask for: 1024px with VQ-16 (LlamaGen's largest is 32).
# A file's sizes are not trusted: without a bound a crafted block_size asks generate for 150 GB.
MAX_GRID = 64


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not fit the model asked for."""


def read_state_dict(path: str | os.PathLike, where: str = "read_state_dict") -> tuple[dict[str, Tensor], dict]:
    """Tensors of a checkpoint file with wrappers removed, and its safetensors metadata ({} if none).

    Every weight must be a finite floating-point tensor: integer or bool tensors, NaN and inf are refused
    with the file and the key named (a bool weight would otherwise load as 0/1)."""
    p = Path(path)
    if p.is_symlink() and not p.exists():
        raise CheckpointError(f"{where}: {str(p)!r} is a symlink that loops or points at nothing")
    if not p.is_file():
        raise CheckpointError(f"{where}: no checkpoint file at {str(p)!r}")
    suffix = p.suffix.lower()  # ComfyUI lists X.SAFETENSORS and X.PT too
    if suffix == ".safetensors":
        try:
            with safe_open(str(p), framework="pt", device="cpu") as f:
                meta = f.metadata() or {}
                sd = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise CheckpointError(f"{where}: {p.name} is not a readable safetensors file ({e})") from e
        freqs = next((v for k, v in sd.items() if k.endswith("freqs_cis")), None)
        sd = unwrap(sd, f"{where}: {p.name}")
        if freqs is not None:
            meta = {**meta, "freqs_cis_rows": str(freqs.shape[0])}
    elif suffix in PICKLE_SUFFIXES:
        try:
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as e:  # weights_only refuses arbitrary pickles: report, never fall back
            raise CheckpointError(
                f"{where}: {p.name} could not be read as a plain-tensor checkpoint with weights_only=True "
                f"(it may hold pickled code, which is never loaded, or be truncated): {e}"
            ) from e
        sd = unwrap(obj, f"{where}: {p.name}")
        freqs = next((v for k, v in _flat_items(obj) if k.endswith("freqs_cis")), None)
        meta = {"freqs_cis_rows": str(freqs.shape[0])} if isinstance(freqs, Tensor) and freqs.dim() else {}
    else:
        raise CheckpointError(f"{where}: {p.name}: expected a .safetensors or {'/'.join(PICKLE_SUFFIXES)} file")
    check_weights(sd, where, p.name)
    return sd, meta


def check_weights(sd: dict[str, Tensor], where: str, name: str) -> None:
    """Refuse integer/bool weights and NaN/inf values, naming the file and the first bad tensors."""
    wrong = [f"{k} ({v.dtype})" for k, v in sd.items() if not v.is_floating_point()]
    if wrong:
        raise CheckpointError(
            f"{where}: {name} holds non-floating-point tensors where weights are floating point: "
            f"{', '.join(wrong[:5])}{' …' if len(wrong) > 5 else ''}; the file is damaged or not a model checkpoint"
        )
    bad = [k for k, v in sd.items() if not all_finite(v)]
    if bad:
        raise CheckpointError(
            f"{where}: {name} holds NaN or inf values in {len(bad)} tensors: {', '.join(bad[:5])}"
            f"{' …' if len(bad) > 5 else ''}; the weights are corrupt (re-download or re-train them)"
        )


def _flat_items(obj: object) -> list[tuple[str, object]]:
    items = list(obj.items()) if isinstance(obj, dict) else []
    for key in ("ema", "model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            items += list(obj[key].items())
    return items


def unwrap(obj: object, where: str) -> dict[str, Tensor]:
    """LlamaGen layouts: {"ema": sd} (preferred), {"model": sd}, {"state_dict": sd} or a bare sd."""
    if isinstance(obj, dict):
        for key in ("ema", "model", "state_dict"):
            if isinstance(obj.get(key), dict) and obj[key]:
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        keys = list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{where}: expected a state dict of tensors (or under 'model'/'ema'), found {keys}")
    out = {}
    for k, v in obj.items():
        k = k.removeprefix("module.").removeprefix("_orig_mod.")
        if not _DROP.search(k):
            out[k] = v
    return out


def detect_kind(sd: dict[str, Tensor]) -> str:
    """'gpt', 'vq', 't5' (a text encoder's weights) or 'unknown'."""
    if "tok_embeddings.weight" in sd and "output.weight" in sd:
        return "gpt"
    if "quantize.embedding.weight" in sd and "encoder.conv_in.weight" in sd:
        return "vq"
    if any(k.startswith(("encoder.block.", "shared.")) for k in sd):
        return "t5"
    return "unknown"


_KIND_HINT = {
    "gpt": "a GPT image model (load it with load_gpt / Load GPT Image Model)",
    "vq": "a VQ tokenizer (load it with load_vq / Load VQ Tokenizer)",
    "t5": "T5 text-encoder weights (load its whole folder with load_text_encoder / Load Text Encoder)",
    "unknown": "not a LlamaGen GPT or VQ checkpoint",
}


def _expect_kind(sd: dict[str, Tensor], kind: str, where: str, name: str) -> None:
    found = detect_kind(sd)
    if found != kind:
        first = ", ".join(list(sd)[:4])
        raise CheckpointError(
            f"{where}: {name} looks like {_KIND_HINT[found]}, not a {kind.upper()} (keys: {first}, …)"
        )


def _count(sd: dict[str, Tensor], prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    return len({m.group(1) for k in sd if (m := pat.match(k))})


def infer_gpt_config(
    sd: dict[str, Tensor], *, n_head: int | None = None, grid: int | None = None, where: str = "load_gpt"
) -> GPTConfig:
    """GPTConfig from tensor shapes; n_head from the argument or the LlamaGen preset of that size."""
    vocab, dim = sd["tok_embeddings.weight"].shape
    n_layer = _count(sd, "layers.")
    heads = n_head or preset_heads(dim, n_layer)
    if heads is None:
        raise CheckpointError(
            f"{where}: cannot tell the number of attention heads of a {dim}-wide, {n_layer}-layer GPT (no "
            f"LlamaGen preset has that size); pass n_head= (CLI: --n-head), or convert the file once with "
            f"`python -m gptimg_core convert IN OUT --n-head N` so that it records its config"
        )
    if dim % heads:
        raise CheckpointError(f"{where}: n_head={heads} does not divide the model width {dim}")
    head_dim = dim // heads
    qkv = sd["layers.0.attention.wqkv.weight"].shape[0]
    if (qkv - dim) % (2 * head_dim):
        raise CheckpointError(f"{where}: wqkv has {qkv} rows, which does not fit n_head={heads} (head_dim {head_dim})")
    n_kv = (qkv - dim) // (2 * head_dim)
    hidden = sd["layers.0.feed_forward.w1.weight"].shape[0]
    common = dict(
        dim=dim, n_layer=n_layer, n_head=heads, n_kv_head=None if n_kv == heads else n_kv,
        ffn_hidden=None if hidden == find_multiple(int(8 * dim / 3), 256) else hidden, vocab_size=vocab,
        block_size=(grid or DEFAULT_GRID) ** 2,
    )  # fmt: skip
    if "cls_embedding.embedding_table.weight" in sd:
        classes = sd["cls_embedding.embedding_table.weight"].shape[0] - 1
        return GPTConfig(**common, model_type="c2i", num_classes=classes, cls_token_num=1)
    if "cls_embedding.cap_proj.fc1.weight" in sd:
        tokens, cap = sd["cls_embedding.uncond_embedding"].shape
        return GPTConfig(**common, model_type="t2i", caption_dim=cap, cls_token_num=tokens)
    raise CheckpointError(f"{where}: GPT checkpoint has neither a class table nor a caption projection")


def infer_vq_config(sd: dict[str, Tensor]) -> VQConfig:
    """VQConfig from tensor shapes (widths, levels, residual blocks, z channels, codebook)."""
    ch = sd["encoder.conv_in.weight"].shape[0]
    enc = [
        sd[f"encoder.conv_blocks.{i}.res.0.conv1.weight"].shape[0] for i in range(_count(sd, "encoder.conv_blocks."))
    ]
    n_dec = _count(sd, "decoder.conv_blocks.")
    dec = [sd[f"decoder.conv_blocks.{n_dec - 1 - i}.res.0.conv1.weight"].shape[0] for i in range(n_dec)]
    if any(w % ch for w in enc + dec):
        raise CheckpointError(f"load_vq: level widths {enc}/{dec} are not multiples of the base width {ch}")
    mult, dec_mult = tuple(w // ch for w in enc), tuple(w // ch for w in dec)
    size, embed = sd["quantize.embedding.weight"].shape
    return VQConfig(
        ch=ch, ch_mult=mult, decoder_ch_mult=None if dec_mult == mult else dec_mult,
        enc_res_blocks=_count(sd, "encoder.conv_blocks.0.res."), dec_res_blocks=_count(sd, "decoder.conv_blocks.0.res."),
        z_channels=sd["encoder.conv_out.weight"].shape[0], codebook_size=size, embed_dim=embed,
        in_channels=sd["encoder.conv_in.weight"].shape[1],
    )  # fmt: skip


def load_strict(model: torch.nn.Module, sd: dict[str, Tensor], where: str, name: str) -> None:
    """load_state_dict(strict=True) with an error that lists the first missing/unexpected keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if k in sd and sd[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{where}: {name} does not fit the inferred model: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"wrong shapes {shapes[:3]}; the file looks like {_KIND_HINT[detect_kind(sd)]}"
        )
    model.load_state_dict(sd, strict=True)


def _file_grid(path: Path, meta: dict, sd: dict[str, Tensor], where: str) -> int | None:
    """Grid side recorded by the file (a `freqs_cis` buffer) or known for an official release."""
    if "freqs_cis_rows" in meta:
        cls_tokens = sd["cls_embedding.uncond_embedding"].shape[0] if "cls_embedding.uncond_embedding" in sd else 1
        rows = int(meta["freqs_cis_rows"])
        side = math.isqrt(max(rows - cls_tokens, 0))
        if side * side != rows - cls_tokens or not 1 <= side <= MAX_GRID:
            raise CheckpointError(
                f"{where}: {path.name}: its freqs_cis buffer has {rows} rows, which is not {cls_tokens} condition "
                f"rows plus a square grid of side 1..{MAX_GRID}; pass the grid yourself (grid= / --grid N)"
            )
        return side
    if path.name in OFFICIAL_GRIDS:
        log.info("%s: official LlamaGen release, token grid %d", path.name, OFFICIAL_GRIDS[path.name])
        return OFFICIAL_GRIDS[path.name]
    return None


def _config_from_meta(cls: type, meta: dict, where: str, name: str, grid: int | None = None) -> GPTConfig | VQConfig:
    """The config our safetensors metadata records (block_size replaced by grid**2 when grid is given);
    JSON or values that do not parse are named with the file and the fix."""
    try:
        data = json.loads(meta["config"])
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        if grid:
            data["block_size"] = grid * grid
        return cls.from_json(json.dumps(data))
    except (KeyError, TypeError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        fix = "pass the real grid (grid= / --grid N)" if "square" in str(e) else "convert the original checkpoint again"
        raise CheckpointError(
            f"{where}: {name}: its safetensors metadata 'config' is not a valid {cls.__name__} ({e}); {fix}"
        ) from e


def _agree(recorded: object, inferred: object, fields: list[str], where: str, name: str) -> None:
    """Refuse metadata whose sizes disagree with the tensors (it is never trusted to allocate)."""
    differ = [f"{f} {getattr(recorded, f)!r} (tensors: {getattr(inferred, f)!r})" for f in fields
              if getattr(recorded, f) != getattr(inferred, f)]  # fmt: skip
    if differ:
        raise CheckpointError(
            f"{where}: {name}: its metadata config disagrees with its tensors: {', '.join(differ)}; "
            f"the file was edited or damaged"
        )


def _check_scalars(cfg: GPTConfig, where: str, name: str) -> None:
    """rope_base and norm_eps are not readable from shapes: a NaN or zero in the metadata would give NaN logits."""
    for field, lo, hi in (("rope_base", 1.0, 1e9), ("norm_eps", 1e-12, 1.0)):
        v = getattr(cfg, field)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:  # NaN fails lo <= v
            raise CheckpointError(
                f"{where}: {name}: its metadata config has {field} {v!r}, expected a number in [{lo:g}, {hi:g}] "
                f"(LlamaGen: rope_base 10000, norm_eps 1e-5); convert the original checkpoint again"
            )


@contextlib.contextmanager
def _named_bad_config(where: str, name: str) -> Iterator[None]:
    """A config from metadata that passes the shape checks but cannot build the model (e.g. widths as floats)."""
    try:
        yield
    except (TypeError, ValueError, ZeroDivisionError) as e:
        raise CheckpointError(f"{where}: {name}: its metadata config cannot build the model ({e})") from e


_GPT_SHAPE_FIELDS = ["dim", "n_layer", "kv_heads", "hidden", "vocab_size", "model_type", "cls_token_num"]


def gpt_from_state_dict(
    sd: dict[str, Tensor], meta: dict, *, n_head: int | None, grid: int | None, where: str, name: str
) -> GPT:
    """Build a GPT (fp32, CPU) from tensors + metadata; explicit n_head/grid override the file."""
    _expect_kind(sd, "gpt", where, name)
    with _named_missing_key(where, name):
        return _build_gpt(sd, meta, n_head=n_head, grid=grid, where=where, name=name)


@contextlib.contextmanager
def _named_missing_key(where: str, name: str) -> Iterator[None]:
    """A tensor the config inference needs but the file lacks: the project's error, not a KeyError."""
    try:
        yield
    except KeyError as e:
        raise CheckpointError(f"{where}: {name} lacks the tensor {e}, which a LlamaGen checkpoint has") from e


def _build_gpt(
    sd: dict[str, Tensor], meta: dict, *, n_head: int | None, grid: int | None, where: str, name: str
) -> GPT:
    if n_head is not None:
        check_int(where, "n_head", n_head, minimum=0, maximum=1024, hint=" (0 or None: from the file)")
    if grid is not None:
        check_int(where, "grid", grid, minimum=0, maximum=MAX_GRID, hint=" (0 or None: from the file)")
    if meta.get("format") == FORMAT and meta.get("kind") == "gpt":
        cfg = _config_from_meta(GPTConfig, meta, where, name, grid)
        if n_head and n_head != cfg.n_head:
            cfg = infer_gpt_config(sd, n_head=n_head, grid=grid or cfg.grid, where=where)
        if cfg.grid > MAX_GRID:
            raise CheckpointError(
                f"{where}: {name}: its metadata asks for a {cfg.grid}x{cfg.grid} token grid (block_size "
                f"{cfg.block_size}); at most {MAX_GRID}x{MAX_GRID} is taken. Pass the real grid (grid= / --grid N)"
            )
        _agree(cfg, infer_gpt_config(sd, n_head=cfg.n_head, grid=cfg.grid, where=where), _GPT_SHAPE_FIELDS, where, name)
        _check_scalars(cfg, where, name)
    else:
        cfg = infer_gpt_config(sd, n_head=n_head, grid=grid, where=where)
    with _named_bad_config(where, name):
        model = GPT(cfg)
    load_strict(model, sd, where, name)
    return model.eval()


def load_gpt(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    n_head: int | None = None,
    grid: int | None = None,
    compile: bool = False,
) -> GPT | JanusModel | OnnxGPT:
    """Load a LlamaGen GPT checkpoint (.pt/.pth/.bin or .safetensors), or a Janus-Pro folder, in eval mode.

    dtype: a torch dtype or one of GPT_DTYPES by name; "int8" is weight-only int8 (quant.py).
    compile: torch.compile a LlamaGen GPT's decode passes on CPU (compiled.py; needs a C++ compiler).
    grid: side of the token grid (16 for 256px VQ-16 models, 24 for 384px); read from our
    safetensors metadata or the file itself when present, else the official file name, else 16.
    A folder must be a Hugging Face Janus folder (config.json model_type "janus"; n_head and grid come
    from its config). A folder that onnx_export wrote loads as its onnxruntime backend (onnx_backend.OnnxGPT).
    """
    if isinstance(dtype, str):
        if dtype not in GPT_DTYPES:
            raise ValueError(f"load_gpt: dtype must be a torch dtype or one of {GPT_DTYPES}, got {dtype!r}")
        dtype = DTYPES.get(dtype, dtype)
    device = torch.device(device)
    if dtype in (torch.bfloat16, "int8") and device.type == "cpu" and not cpu_has_native_bf16():
        log.warning("load_gpt: this CPU has no native bf16 (avx512_bf16/amx); %s runs emulated and slowly", dtype)
    p = Path(path)
    if compile and p.is_dir():
        raise ValueError(f"load_gpt: compile is for LlamaGen-format GPT files; {p.name} is a folder (Janus or ONNX)")
    if p.is_dir() and (p / ONNX_CONFIG).is_file():
        from .onnx_backend import load_onnx_gpt

        return load_onnx_gpt(p, device=device, dtype=dtype)
    if p.is_dir():
        check_folder(p, "load_gpt")
        if dtype == "int8":
            raise ValueError(f"load_gpt: int8 weights are for LlamaGen-format GPTs; load {p.name} as bf16 or fp16")
        return load_janus_model(p, device=device, dtype=dtype, n_head=n_head, grid=grid)
    sd, meta = read_state_dict(p, "load_gpt")
    gpt = _gpt_from_file(p, sd, meta, n_head=n_head, grid=grid, where="load_gpt")
    gpt = quantize_int8(gpt).to(device) if dtype == "int8" else gpt.to(device=device, dtype=dtype)
    if is_builtin(p):
        gpt.recommended = BUILTIN_RECOMMENDED[gpt.kind]
    if compile:
        compiled.enable(gpt, "load_gpt")
    return gpt


def _gpt_from_file(
    p: Path, sd: dict[str, Tensor], meta: dict, *, n_head: int | None, grid: int | None, where: str
) -> GPT:
    """gpt_from_state_dict, with the grid resolved from the file when it is not given."""
    if not (meta.get("format") == FORMAT or grid) and detect_kind(sd) == "gpt":
        grid = _file_grid(p, meta, sd, where)
        if grid is None:
            log.warning(
                "%s: %s does not record its token grid; assuming %d (256px with VQ-16)", where, p.name, DEFAULT_GRID
            )
    return gpt_from_state_dict(sd, meta, n_head=n_head, grid=grid, where=where, name=p.name)


def vq_from_state_dict(sd: dict[str, Tensor], meta: dict, *, where: str, name: str) -> VQModel:
    _expect_kind(sd, "vq", where, name)
    with _named_missing_key(where, name):
        inferred = infer_vq_config(sd)
    if meta.get("format") == FORMAT and meta.get("kind") == "vq":
        cfg = _config_from_meta(VQConfig, meta, where, name)
        _agree(cfg, inferred, ["ch", "ch_mult", "dec_mult", "z_channels", "codebook_size", "embed_dim"], where, name)
    else:
        cfg = inferred
    with _named_bad_config(where, name):
        model = VQModel(cfg)
    load_strict(model, sd, where, name)
    return model.eval()


def load_vq(
    path: str | os.PathLike, *, device: str | torch.device = "cpu", dtype: torch.dtype | str = torch.float32
) -> VQModel | JanusVQ | OnnxVQ:
    """Load a LlamaGen VQ tokenizer checkpoint, or the VQ of a Janus-Pro folder, in eval mode; an ONNX export
    folder loads as onnx_backend.OnnxVQ (the same encode/decode, at the precision it was exported in).

    dtype: torch.float32 (default) or torch.bfloat16, or one of VQ_DTYPES by name. bf16 runs the encoder and
    decoder in bf16 (faster on a CPU with native bf16, images change slightly: README, VQ decode); a
    LlamaGen VQ keeps its codebook in fp32, so the nearest code is still found in fp32."""
    if isinstance(dtype, str) and dtype in VQ_DTYPES:
        dtype = DTYPES[dtype]
    if not isinstance(dtype, torch.dtype) or dtype not in (DTYPES[k] for k in VQ_DTYPES):
        raise ValueError(f"load_vq: dtype must be torch.float32, torch.bfloat16 or one of {VQ_DTYPES}, got {dtype!r}")
    device = torch.device(device)
    if dtype == torch.bfloat16 and device.type == "cpu" and not cpu_has_native_bf16():
        log.warning("load_vq: this CPU has no native bf16 (avx512_bf16/amx); bf16 runs emulated and slowly")
    p = Path(path)
    if p.is_dir() and (p / ONNX_CONFIG).is_file():
        if dtype != torch.float32:
            raise ValueError(
                f"load_vq: {p.name} is an ONNX export, whose precision was fixed when it was exported; load it "
                "with the default dtype (or export it again with --dtype)"
            )
        from .onnx_backend import OnnxVQ

        return OnnxVQ(p, device=device)
    if p.is_dir():
        check_folder(p, "load_vq")
        return load_janus_vq(p, device=device, dtype=dtype)
    sd, meta = read_state_dict(p, "load_vq")
    return vq_from_state_dict(sd, meta, where="load_vq", name=p.name).to(device).compute_in(dtype)


def save_model(model: GPT | VQModel, path: str | os.PathLike, extra: dict[str, str] | None = None) -> None:
    """Write our safetensors: the state dict plus {"format", "kind", "config"} metadata."""
    kind = "gpt" if isinstance(model, GPT) else "vq"
    if any(v.dtype == torch.int8 for v in model.state_dict().values()):
        raise CheckpointError("save_model: this model holds int8 weights; save the fp32 model it was loaded from")
    meta = {"format": FORMAT, "kind": kind, "config": model.cfg.to_json(), **(extra or {})}
    sd = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp = Path(str(path) + ".tmp")
    save_file(sd, str(tmp), metadata=meta)
    os.replace(tmp, path)  # never leave a half-written file under the final name


def model_from_state_dict(
    p: Path, sd: dict[str, Tensor], meta: dict, *, n_head: int | None = None, grid: int | None = None, where: str
) -> GPT | VQModel:
    """A GPT or a VQ from tensors already read from file p, whichever they hold."""
    if detect_kind(sd) == "vq":
        return vq_from_state_dict(sd, meta, where=where, name=p.name)
    if detect_kind(sd) == "gpt":
        return _gpt_from_file(p, sd, meta, n_head=n_head, grid=grid, where=where)
    raise CheckpointError(f"{where}: {p.name} looks like {_KIND_HINT[detect_kind(sd)]}")


def load_any(path: str | os.PathLike, *, n_head: int | None = None, grid: int | None = None) -> GPT | VQModel:
    """A GPT or a VQ, whichever the file holds."""
    p = Path(path)
    sd, meta = read_state_dict(p, "load_any")
    return model_from_state_dict(p, sd, meta, n_head=n_head, grid=grid, where="load_any")


def convert(
    src: str | os.PathLike, dst: str | os.PathLike, *, n_head: int | None = None, grid: int | None = None
) -> None:
    """Rewrite a checkpoint as our safetensors with its config in the metadata (loads without guessing);
    a c2i file's class names come along. The output's folder is checked before anything is read."""
    out = Path(dst)
    if out.suffix.lower() != ".safetensors":
        raise CheckpointError(f"convert: the output must be a .safetensors file, got {str(dst)!r}")
    if not out.parent.is_dir():
        raise CheckpointError(f"convert: the output folder {str(out.parent)!r} does not exist; create it first")
    if Path(src).resolve() == out.resolve():
        raise CheckpointError("convert: the output path must differ from the input")
    p = Path(src)
    sd, meta = read_state_dict(p, "convert")
    model = model_from_state_dict(p, sd, meta, n_head=n_head, grid=grid, where="convert")
    save_model(model, dst, {"class_names": meta["class_names"]} if "class_names" in meta else None)
