"""Where the shipped built-in model lives (trained by `python -m gptimg_core.train`, see its MODEL_CARD.md)."""

from __future__ import annotations

from pathlib import Path

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
BUILTIN_NAME = "builtin"  # how loaders and nodes name it next to files
# Sampling settings for the built-in GPTs (by model_type), picked on the development sets (`eval --dev`),
# never the evaluation's seed, and rechecked on the shipped weights: the t2i with 8 draws, CFG 1.75 / 2 / 2.5
# drew 81.5 / 84.9 / 80.0% of 265 dev pairs and temperature 0.55 / 0.7 / 0.85 83.4 / 84.9 / 82.3% (single
# objects 96.2-96.7% throughout; above CFG 2 it draws extra objects). The c2i draws best at CFG 1.5: 1.25 /
# 1.5 / 2 drew 95.5 / 96.0 / 93.7% of 1,152 dev classes (seeds 600-605); for the c2i before, 1 / 1.25 / 1.5 /
# 1.75 / 2 / 3 drew 90.9 / 94.6 / 96.2 / 94.4 / 93.2 / 73.0%, and on fresh seeds (606-611) 1.5 drew 95.4%
# against 92.7% at 2. The shipped c2i draws best among its top 3-5 tokens: top-k 2 / 3 / 5 / 10 / 20 drew
# 94.6 / 97.1 / 97.0 / 95.9 / 96.0% of 1,152 dev classes (seeds 600-605; temperature 0.7 / 0.85 lost: 94.7 /
# 95.1%), and 5 against 20 on fresh seeds 95.8 / 94.6% (606-611) and 95.2 / 94.4% (612-617): 96.0% against
# 95.0% of 3,456. The t2i gained nothing from it (top-k 5: dev pairs 85.1% of 619 against 85.5%; inpainting
# 91.1% of 960 edits, as at 20). Each sweep is in docs/training-notes.md.
# candidates: draws per image, the likeliest under the prompt kept (generate's best_of). For the shipped t2i,
# 8 took dev pairs from 79.2% to 85.5% of 619 (seeds 555-561) and single objects from 96.7% to 97.3% of 1,481;
# for the t2i before it, pairs 72.1% to 77.4% of 1,149, and 16 did no better than 8 (75.8% of 265). The c2i
# gained nothing (384 dev classes: 95.6% with 1, 95.1% with 8), so it draws once. docs/training-notes.md.
BUILTIN_SAMPLING: dict[str, dict[str, float]] = {
    "t2i": {"cfg_scale": 2.0, "temperature": 0.7, "top_k": 20, "top_p": 1.0, "candidates": 8},
    "c2i": {"cfg_scale": 1.5, "temperature": 1.0, "top_k": 5, "top_p": 1.0, "candidates": 1},
}
# Inpainting with particles (editing.inpaint, candidates > 1) draws at temperature 1.0: picking among the
# particles does the selecting that a low temperature does for one fill, and a fuller spread gives it more
# fills to choose among. With the previous run of the recipe, 8 particles (resampled as they went, as first
# measured), 672 dev edits (seeds 777-783): temperature 0.7 right in 84.2%, 1.0 in 88.4% (ahead on every
# seed); top-k 0 or 50 no better. For the shipped t2i (960 dev edits, seeds 781-790): CFG 1.5 / 2 / 2.5 drew
# 86.4 / 89.0 / 86.3%, temperature 0.85 88.5%; 16 particles 91.1%, and on seeds 791-802 (1,152) 92.4% against
# 91.1% with 8: 91.8% against 90.1% of all 2,112, at twice the cost (docs/training-notes.md).
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
