"""Where the shipped built-in model lives (trained by `python -m gptimg_core.train`, see its MODEL_CARD.md)."""

from __future__ import annotations

from pathlib import Path

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
BUILTIN_NAME = "builtin"  # how loaders and nodes name it next to files
# Sampling settings for the built-in GPTs (by model_type), picked on the dev sets (`eval --dev`), never on the
# evaluation's seeds; the sweeps behind each value are in MODEL_CARD.md (Evaluation) and docs/training-notes.md.
BUILTIN_SAMPLING: dict[str, dict[str, float]] = {
    "t2i": {"cfg_scale": 2.0, "temperature": 0.7, "top_k": 20, "top_p": 1.0, "candidates": 8},
    "c2i": {"cfg_scale": 1.5, "temperature": 1.0, "top_k": 5, "top_p": 1.0, "candidates": 1},
}
# Inpainting draws at temperature 1.0: choosing among the particles does the selecting that a low temperature
# does for one fill, and a fuller spread gives it more to choose from (sweeps: docs/training-notes.md).
BUILTIN_INPAINT_SAMPLING: dict[str, dict[str, float]] = {
    kind: {**s, "temperature": 1.0, "candidates": 16} for kind, s in BUILTIN_SAMPLING.items()
}


def builtin_path(part: str) -> Path:
    """Path of a built-in part: 'vq', 't2i', 'c2i' (safetensors files) or 'text_encoder' (a T5 folder)."""
    files = {"vq": "vq.safetensors", "t2i": "gpt_t2i.safetensors", "c2i": "gpt_c2i.safetensors", "text_encoder": "t5"}
    if part not in files:
        raise ValueError(f"builtin_path: part must be one of {sorted(files)}, got {part!r}")
    path = BUILTIN_DIR / files[part]
    if not path.exists():
        raise FileNotFoundError(
            f"builtin_path: the built-in {part} is missing at {path}; reinstall the pack, or train it with "
            f"`python -m gptimg_core.train` (see gptimg_core/builtin/MODEL_CARD.md)"
        )
    return path
