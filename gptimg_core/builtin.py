"""Where the shipped built-in model lives (trained by `python -m gptimg_core.train`, see its MODEL_CARD.md)."""

from __future__ import annotations

from pathlib import Path

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
BUILTIN_NAME = "builtin"  # how loaders and nodes name it next to files
# Sampling settings for the built-in GPTs (by model_type), picked on development seeds, not the
# evaluation's. An earlier t2i drew 52% of single objects right with CFG 2 and top-k 20 against 43%
# with CFG 4 and no top-k. The previous t2i (canonical flat targets) drew 66% at temperature 0.7
# against 60% at 1.0 (three dev seeds, 793 prompts; CFG 1.5 or 3: 57%, 43%), its c2i 80% of classes
# at 1.0 against 72% at 0.7. Rechecked for the 8,000-step GPTs: t2i 74.8% / 74.0% / 71.3% at 0.7 / 0.85 /
# 1.0 (900 dev prompts), c2i 79.5% at 1.0 against 79.2% at 0.85 (384 dev samples). The shipped t2i
# (9,000 steps): 76.1% / 76.2% at 0.7 / 0.85, but size 73.6% / 69.7% and position 79.7% / 75.3%. For the
# shipped t2i (`eval --dev`, 635 single-object / 265 pair prompts): CFG 1.5 / 2 / 3 / 4 drew 79.2 / 86.9 / 78.6 /
# 67.1% of single objects and 9.4 / 22.3 / 34.0 / 28.3% of pairs (above 2 it draws extra objects); top-k 4 / 8 /
# 20 / 50: single objects 86.3 / 87.6 / 86.9 / 87.1%, pairs 25.7 / 25.3 / 22.3 / 21.9%, all within noise.
BUILTIN_SAMPLING: dict[str, dict[str, float]] = {
    "t2i": {"cfg_scale": 2.0, "temperature": 0.7, "top_k": 20, "top_p": 1.0},
    "c2i": {"cfg_scale": 2.0, "temperature": 1.0, "top_k": 20, "top_p": 1.0},
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
