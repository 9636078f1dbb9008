"""Each model's recommended sampling settings, and how a caller's choices override them.

A model carries a `Recommended` (LlamaGen's published settings for LlamaGen checkpoints, the tuned ones for
the built-in model, a family's own for others). Every entry point (Python API, CLI, nodes) leaves a setting
None to mean "the model's recommendation", so the same call gives the same image everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from .sampling import SamplingOptions

PARTICLES = 8  # inpaint's fills per pass where a model recommends none of its own


@dataclass(frozen=True)
class Recommended:
    """How a model samples best. `generate` draws with `sample` and keeps the likeliest of `best_of` draws per
    image; the editing functions draw with `edit` and weigh `particles` fills per pass."""

    sample: SamplingOptions
    best_of: int = 1
    edit: SamplingOptions | None = None  # None: as `sample`
    particles: int = PARTICLES

    def options(self, task: str, **chosen: Any) -> SamplingOptions:
        """The options for task "sample" or "edit", with every non-None value of `chosen` in place of ours."""
        base = self.edit if task == "edit" and self.edit is not None else self.sample
        names = {f.name for f in fields(SamplingOptions)}
        unknown = set(chosen) - names
        if unknown:
            raise TypeError(
                f"Recommended.options: unknown settings {sorted(unknown)}; expected some of {sorted(names)}"
            )
        return replace(base, **{k: v for k, v in chosen.items() if v is not None})

    def describe(self) -> str:
        """One line for a loader's UI and the CLI's help: the values a default widget or flag stands for."""
        s = self.sample
        line = f"cfg {s.cfg_scale:g}, temperature {s.temperature:g}, top_k {s.top_k}, top_p {s.top_p:g}"
        if self.best_of > 1:
            line += f", best of {self.best_of}"
        if self.edit is not None and self.edit != self.sample:
            line += f"; to edit: temperature {self.edit.temperature:g}"
        return line + f", {self.particles} particles to inpaint"


# LlamaGen's own sampling scripts' defaults (autoregressive/sample/sample_{c2i,t2i}.py).
LLAMAGEN = {
    "c2i": Recommended(SamplingOptions(cfg_scale=4.0, temperature=1.0, top_k=2000, top_p=1.0)),
    "t2i": Recommended(SamplingOptions(cfg_scale=7.5, temperature=1.0, top_k=1000, top_p=1.0)),
}


def resolve(model: Any, task: str, **chosen: Any) -> SamplingOptions:
    """The options a call runs with: the model's recommendation for `task`, overridden by non-None `chosen`."""
    return model.recommended.options(task, **chosen)
