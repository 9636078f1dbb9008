"""Reading a Hugging Face Janus folder: config.json, generation_config.json and the safetensors weights
(one file or shards with an index), a chosen subset of tensors at a time. Local files only."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from transformers import GenerationConfig, JanusConfig

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
FOLDER_HINT = (
    "a Hugging Face Janus-Pro folder such as deepseek-community/Janus-Pro-1B (config.json with model_type 'janus', "
    "generation_config.json, model.safetensors or model-*.safetensors with model.safetensors.index.json, tokenizer "
    "files), or an ONNX export folder (gptimg_onnx.json, written by `python -m gptimg_core export-onnx`)"
)


class JanusFolderError(ValueError):
    """A folder that is not a usable Janus folder; the message names the function, the folder and the fix."""


def is_janus_folder(path: str | os.PathLike) -> bool:
    """True if path is a folder whose config.json says model_type 'janus' (nothing else is checked)."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text(encoding="utf-8")).get("model_type") == "janus"
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def check_folder(path: str | os.PathLike, where: str) -> Path:
    """The folder, once config.json says it is a Janus folder."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise JanusFolderError(f"{where}: {str(folder)!r} is not an existing folder; expected {FOLDER_HINT}.")
    cfg = folder / "config.json"
    if not cfg.is_file():
        found = sorted(p.name for p in folder.iterdir())[:12]
        raise JanusFolderError(f"{where}: {str(folder)!r} has no config.json (found {found}); expected {FOLDER_HINT}.")
    try:
        model_type = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as e:
        raise JanusFolderError(f"{where}: {str(cfg)!r} is not a valid JSON object ({e}).") from e
    if model_type != "janus":
        raise JanusFolderError(
            f"{where}: {str(cfg)!r} has model_type {model_type!r}, not 'janus'; point it at a Janus-Pro folder "
            f"({FOLDER_HINT}), or load LlamaGen checkpoints by their file."
        )
    return folder


def read_config(folder: Path) -> JanusConfig:
    from transformers import JanusConfig

    return JanusConfig.from_pretrained(folder, local_files_only=True)


def read_generation_config(folder: Path, where: str) -> GenerationConfig:
    """generation_config.json, which must name the image-start token (generation_kwargs.boi_token_id)."""
    from transformers import GenerationConfig

    if not (folder / "generation_config.json").is_file():
        raise JanusFolderError(
            f"{where}: {str(folder)!r} has no generation_config.json; copy it from the model's Hugging Face folder "
            "(it holds the pad and image-start token ids)."
        )
    gen = GenerationConfig.from_pretrained(folder, local_files_only=True)
    boi = (gen.generation_kwargs or {}).get("boi_token_id")
    if boi is None or gen.pad_token_id is None or gen.bos_token_id is None:
        raise JanusFolderError(
            f"{where}: {str(folder / 'generation_config.json')!r} lacks pad_token_id, bos_token_id or "
            f"generation_kwargs.boi_token_id (got {gen.pad_token_id}, {gen.bos_token_id}, {boi}); copy the file from "
            "the model's Hugging Face folder."
        )
    return gen


def weight_files(folder: Path, where: str) -> dict[str, Path]:
    """Tensor name -> the safetensors file holding it, from the index (sharded) or the single file."""
    from safetensors import safe_open

    index = folder / INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
            raise JanusFolderError(f"{where}: {str(index)!r} is not a safetensors index ({e}).") from e
        files = {name: folder / shard for name, shard in weight_map.items()}
        missing = sorted({p.name for p in files.values() if not p.is_file()})
        if missing:
            raise JanusFolderError(
                f"{where}: {str(folder)!r} lacks {len(missing)} of the shards its {INDEX} lists ({missing[:4]}); "
                "finish the download (every model-*.safetensors file of the model) and try again."
            )
        return files
    single = folder / SINGLE
    if single.is_file():
        with safe_open(str(single), framework="pt", device="cpu") as f:
            return {name: single for name in f.keys()}
    found = sorted(p.name for p in folder.glob("*.safetensors"))
    raise JanusFolderError(
        f"{where}: {str(folder)!r} has neither {SINGLE} nor {INDEX} (safetensors found: {found}); download the "
        "model's weights in safetensors format (.bin files are not read)."
    )


def read_tensors(
    folder: Path, prefixes: tuple[str, ...], strip: str, dtype: torch.dtype, where: str
) -> dict[str, Tensor]:
    """Every tensor whose name starts with one of prefixes, `strip` removed from its name, cast to dtype. Only
    these tensors are read from disk; the others (the understanding encoder, say) are never loaded."""
    from safetensors import safe_open

    by_file: dict[Path, list[str]] = {}
    for name, path in weight_files(folder, where).items():
        if name.startswith(prefixes):
            by_file.setdefault(path, []).append(name)
    out = {}
    for path, names in by_file.items():
        with safe_open(str(path), framework="pt", device="cpu") as f:
            for name in names:
                out[name.removeprefix(strip)] = f.get_tensor(name).to(dtype)  # in memory twice at most while cast
    return out


def assign_strict(module: torch.nn.Module, sd: dict[str, Tensor], where: str, folder: Path, prefix: str) -> None:
    """Load sd into a module built on the meta device (assign=True), refusing missing, extra or mis-shaped tensors."""
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if k in sd and sd[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        raise JanusFolderError(
            f"{where}: the weights under {prefix!r} in {str(folder)!r} do not fit its config.json: missing "
            f"{[prefix + k for k in missing[:4]]}, unexpected {[prefix + k for k in unexpected[:4]]}, wrong shapes "
            f"{shapes[:3]}; the folder mixes files of different models, or a download is incomplete."
        )
    module.load_state_dict(sd, strict=True, assign=True)
