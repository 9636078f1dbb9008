"""Where the shipped built-in model lives (trained by `python -m gptimg_core.train`, see its MODEL_CARD.md)."""

from __future__ import annotations

from pathlib import Path

from .sampling import SamplingOptions
from .settings import Recommended

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
BUILTIN_NAME = "builtin"  # how loaders and nodes name it next to files
# The built-in GPTs' settings, each picked on the dev sets (`eval --dev`), never on the evaluation's seeds;
# the sweeps behind each value are in MODEL_CARD.md (Evaluation) and docs/training-notes.md.
BUILTIN_RECOMMENDED: dict[str, Recommended] = {
    "t2i": Recommended(
        SamplingOptions(cfg_scale=2.0, temperature=0.7, top_k=20),
        best_of=8,
        # particles select among fills, so each fill draws from the fuller spread of temperature 1
        edit=SamplingOptions(cfg_scale=2.0, temperature=1.0, top_k=20),
        particles=16,
    ),
    "c2i": Recommended(SamplingOptions(cfg_scale=1.5, temperature=1.0, top_k=5), best_of=1, particles=16),
}


def _as_dict(kind: str, task: str) -> dict[str, float]:
    rec = BUILTIN_RECOMMENDED[kind]
    o = rec.options(task)
    count = {"best_of": rec.best_of} if task == "sample" else {"particles": rec.particles}
    return {"cfg_scale": o.cfg_scale, "temperature": o.temperature, "top_k": o.top_k, "top_p": o.top_p, **count}


# The same values as keyword dicts of generate / inpaint (what eval's --sampling overrides).
BUILTIN_SAMPLING: dict[str, dict[str, float]] = {kind: _as_dict(kind, "sample") for kind in BUILTIN_RECOMMENDED}
BUILTIN_INPAINT_SAMPLING: dict[str, dict[str, float]] = {kind: _as_dict(kind, "edit") for kind in BUILTIN_RECOMMENDED}


def is_builtin(path: str | Path) -> bool:
    """Whether `path` is one of the shipped built-in model files."""
    try:
        return Path(path).resolve().parent == BUILTIN_DIR
    except OSError:
        return False


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
