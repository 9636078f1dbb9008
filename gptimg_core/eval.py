"""Does the built-in model follow its prompts? `python -m gptimg_core.eval [--n 1000]`.

Generates from random prompts of every form (seen and held-out colour/shape/background triples),
class ids, and inpainting edits, reads each image back with the shapes checker and prints the rates.
`--dev` runs the development sets instead (other seeds): pick recipes and sampling settings on those
(and on more dev seeds), and report the evaluation seed. `--sampling t2i.cfg_scale=3` overrides a default
sampling setting. Each rate is printed with its 95% interval.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .builtin import BUILTIN_INPAINT_SAMPLING, BUILTIN_SAMPLING, builtin_path
from .checkpoint import DTYPES, load_gpt, load_vq
from .conditioning import prepare_condition
from .editing import inpaint, pixel_mask_to_tokens, token_logp
from .generate import generate
from .gpt import GPT
from .images import from_uint8, to_uint8
from .shapes import analyze, check, describe, place, render, sample_spec
from .shapes.world import CLASS_NAMES, COLOUR_NAMES, SHAPES, ObjectSpec, SceneSpec, in_reading_order
from .text_encoder import TextEncoder, load_text_encoder
from .train.canonical import canonical_codes, canonicalize, flat_colours
from .vq import VQModel

# Development sets: (prompts or cases, seed) per part, disjoint from the evaluation's seeds (1234..1238).
DEV_SETS = {
    "text": [(300, 555), (300, 556), (300, 557)],
    "class": [(192, 600), (192, 601), (192, 602), (192, 603)],
    "inpaint": [(96, 777)],
    "reconstruction": [(300, 888)],
    "binding": [(128, 4242)],
}
# What each part samples with: the built-in GPTs' settings, and the t2i's for inpainting.
EVAL_SAMPLING = {**BUILTIN_SAMPLING, "inpaint": BUILTIN_INPAINT_SAMPLING["t2i"]}


@dataclass
class Tally:
    """Counts of right answers per question."""

    right: dict[str, int] = field(default_factory=dict)
    asked: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, ok: bool | None) -> None:
        if ok is None:
            return
        self.asked[key] = self.asked.get(key, 0) + 1
        self.right[key] = self.right.get(key, 0) + int(ok)

    def merge(self, other: Tally) -> None:
        """Add other's counts to these."""
        for key, n in other.asked.items():
            self.asked[key] = self.asked.get(key, 0) + n
            self.right[key] = self.right.get(key, 0) + other.right[key]

    def rates(self) -> dict[str, dict[str, float]]:
        """{question: {"rate", "n", "low", "high"}}: low..high is the rate's 95% Wilson interval."""
        out = {}
        for k, n in sorted(self.asked.items()):
            low, high = wilson(self.right[k], n)
            out[k] = {"rate": round(self.right[k] / n, 3), "n": n, "low": round(low, 3), "high": round(high, 3)}
        return out


def wilson(right: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a rate right/n (n > 0); unlike +-2 standard errors it stays inside [0, 1]
    and is not empty at 0% or 100%."""
    z, p = 1.96, right / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, mid - half), min(1.0, mid + half)


@dataclass
class Models:
    t2i: GPT
    c2i: GPT
    vq: VQModel
    te: TextEncoder
    # Sampling settings by model_type, and "inpaint" (the t2i's); EVAL_SAMPLING unless overridden (--sampling).
    sampling: dict[str, dict[str, float]] = field(
        default_factory=lambda: {k: dict(v) for k, v in EVAL_SAMPLING.items()}
    )

    def text(self, prompts: list[str], seed: int, **kw) -> np.ndarray:
        feats, mask = self.te.encode(prompts)
        g = torch.Generator().manual_seed(seed)
        codes = generate(self.t2i, feats, cond_mask=mask, generator=g, **{**self.sampling["t2i"], **kw})
        return to_uint8(self.vq.decode(codes))


def load_builtin(
    gpt_t2i: str | None = None,
    gpt_c2i: str | None = None,
    vq: str | None = None,
    te: str | None = None,
    *,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Models:
    """The models to evaluate (the built-in ones unless paths are given); the GPTs and the T5 in dtype,
    the VQ in fp32, as the nodes load them."""
    t2i = load_gpt(gpt_t2i or builtin_path("t2i"), device=device, dtype=dtype)
    return Models(
        t2i=t2i, c2i=load_gpt(gpt_c2i or builtin_path("c2i"), device=device, dtype=dtype),
        vq=load_vq(vq or builtin_path("vq"), device=device),
        te=load_text_encoder(
            te or builtin_path("text_encoder"), max_length=t2i.cfg.cls_token_num, device=device, dtype=dtype
        ),
    )  # fmt: skip


def _form(spec: SceneSpec) -> str:
    if len(spec.objects) == 2:
        return "two objects"
    o = spec.objects[0]
    return "single (plain)" if o.size is None and o.position is None else "single (size/position)"


def eval_text(m: Models, n: int, seed: int, batch: int = 32) -> Tally:
    """Text prompts of every form; half from held-out triples."""
    rng = np.random.default_rng(seed)
    tally = Tally()
    specs = [sample_spec(rng, split="heldout" if i % 2 else "train") for i in range(n)]
    for start in range(0, n, batch):
        chunk = specs[start : start + batch]
        images = m.text([describe(s) for s in chunk], seed + start)
        for s, im in zip(chunk, images, strict=True):
            r = check(s, im)
            split = "held-out" if s.held_out else "seen"
            form = _form(s)
            if form == "two objects":
                tally.add(f"two objects: both right [{split}]", r.background and r.objects)
                tally.add("two objects: both right", r.background and r.objects)
                # where pairs fail: each asked object alone, and how many objects were drawn
                for i in range(len(s.objects)):
                    tally.add("two objects: each object found", i < r.matched)
                tally.add("two objects: exactly two drawn", r.count)
            else:
                cs = r.background and r.colour and r.shape
                tally.add(f"single: colour+shape+background [{split}]", cs)
                tally.add("single: colour+shape+background", cs)
                # size/position count only when the asked object itself was found
                tally.add("single: size (when asked)", None if r.size is None else r.size and r.objects)
                tally.add("single: position (when asked)", None if r.position is None else r.position and r.objects)
    return tally


def eval_class(m: Models, n: int, seed: int, batch: int = 48) -> Tally:
    """Class-conditional: the image holds an object of the class's colour and shape."""
    tally = Tally()
    ids = [i % len(CLASS_NAMES) for i in range(n)]
    for start in range(0, n, batch):
        chunk = ids[start : start + batch]
        g = torch.Generator().manual_seed(seed + start)
        codes = generate(m.c2i, torch.tensor(chunk), generator=g, **m.sampling["c2i"])
        for cid, im in zip(chunk, to_uint8(m.vq.decode(codes)), strict=True):
            colour, shape = CLASS_NAMES[cid].split(" ")
            found = analyze(im)
            ok = any(o.colour == colour and o.shape == shape for o in found.objects) and found.background != colour
            tally.add("class: colour+shape", ok)
    return tally


def eval_reconstruction(m: Models, n: int, seed: int, batch: int = 64) -> Tally:
    """The VQ alone: rendered scenes of every form, encoded and decoded, read back by the checker.
    This bounds every other rate (the GPTs can only draw what the VQ can)."""
    rng = np.random.default_rng(seed)
    tally = Tally()
    specs = [sample_spec(rng, split="heldout" if i % 2 else "train") for i in range(n)]
    for start in range(0, n, batch):
        chunk = specs[start : start + batch]
        pixels = from_uint8(np.stack([render(place(s, rng), 64) for s in chunk]))
        for s, im in zip(chunk, to_uint8(m.vq.decode(m.vq.encode(pixels))), strict=True):
            tally.add("vq: reconstruction passes the checker", check(s, im).ok)
    return tally


def eval_binding(m: Models, n: int, seed: int, batch: int = 64) -> Tally:
    """Two-object scenes scored teacher-forced, no sampling: is the image likelier under its own prompt than
    under the same prompt with the two objects' colours swapped? A t2i that does not tie each colour to
    its shape scores about 50%. Scenes are named in reading order, as the t2i was trained, and scored in
    canonical codes (every flat token its colour's commonest code among these scenes), the codes the
    built-in t2i learnt to emit: on raw codes its likelihoods are dominated by context codes it never
    emits (measured in docs/training-notes.md, stage 2)."""
    rng = np.random.default_rng(seed)
    tally = Tally()
    scenes = []
    while len(scenes) < n:
        s = sample_spec(rng, split="heldout" if len(scenes) % 2 else "train")
        if len(s.objects) == 2 and len({o.colour for o in s.objects}) == len({o.shape for o in s.objects}) == 2:
            scenes.append(in_reading_order(place(s, rng)))
    for start in range(0, n, batch):
        chunk = scenes[start : start + batch]
        pixels = from_uint8(np.stack([render(sc, 64) for sc in chunk]))
        codes, colours = m.vq.encode(pixels).flatten(1), flat_colours(pixels, m.vq.downsample).flatten(1)
        codes = canonicalize(codes, colours, canonical_codes(codes, colours))  # (B, N)
        a, b = zip(*(sc.spec.objects for sc in chunk), strict=True)
        swapped = [
            SceneSpec(sc.spec.background, (ObjectSpec(y.colour, x.shape), ObjectSpec(x.colour, y.shape)))
            for sc, x, y in zip(chunk, a, b, strict=True)
        ]
        gap = _image_logp(m, codes, [describe(sc.spec) for sc in chunk]) - _image_logp(m, codes, map(describe, swapped))
        for g in gap.tolist():
            tally.add("two objects: own pairing likelier than swapped colours", g > 0)
    return tally


def _image_logp(m: Models, codes: Tensor, prompts) -> Tensor:
    """Teacher-forced log-likelihood (B,) of image codes (B, N) under the t2i with each prompt (no CFG)."""
    feats, mask = m.te.encode(list(prompts))
    cond = prepare_condition(m.t2i, feats, mask, None, None, guided=False, where="eval_binding")
    return token_logp(m.t2i, cond, codes).sum(1)


def inpaint_case(rng: np.random.Generator) -> tuple[SceneSpec, SceneSpec, np.ndarray, np.ndarray]:
    """A one-object scene, the same scene with another object in its place, its image and a mask
    (1 = repaint) covering the object's box."""
    old = sample_spec(rng, split="train")
    while len(old.objects) != 1:
        old = sample_spec(rng, split="train")
    scene = place(old, rng)
    o = scene.objects[0]
    choices = [(c, s) for c in COLOUR_NAMES for s in SHAPES if c != scene.background and (c, s) != (o.colour, o.shape)]
    colour, shape = choices[rng.integers(len(choices))]
    new = SceneSpec(scene.background, (ObjectSpec(colour, shape, o.size, old.objects[0].position),))
    size = 64
    mask = np.zeros((size, size), np.float32)
    half = o.side * size / 2 + 1
    cx, cy = o.cx * size, o.cy * size
    mask[max(0, int(cy - half)) : int(np.ceil(cy + half)), max(0, int(cx - half)) : int(np.ceil(cx + half))] = 1
    return old, new, render(scene, size), mask


def eval_inpaint(m: Models, n: int, seed: int, batch: int = 16) -> Tally:
    """Mask one object, inpaint with a prompt naming another colour/shape; kept tokens must not move."""
    rng = np.random.default_rng(seed)
    tally = Tally()
    cases = [inpaint_case(rng) for _ in range(n)]
    for start in range(0, n, batch):
        chunk = cases[start : start + batch]
        codes = m.vq.encode(from_uint8(np.stack([c[2] for c in chunk])))
        redo = pixel_mask_to_tokens(torch.from_numpy(np.stack([c[3] for c in chunk])), m.vq.downsample)
        feats, mask = m.te.encode([describe(c[1]) for c in chunk])
        g = torch.Generator().manual_seed(seed + start)
        out = inpaint(m.t2i, codes, ~redo, feats, cond_mask=mask, generator=g, **m.sampling["inpaint"])
        for i, im in enumerate(to_uint8(m.vq.decode(out))):
            tally.add("inpaint: new object right", check(chunk[i][1], im).ok)
            tally.add(
                "inpaint: tokens outside the mask unchanged", bool(torch.equal(out[i][~redo[i]], codes[i][~redo[i]]))
            )
    return tally


def parse_sampling(items: list[str], sampling: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Overrides like 't2i.cfg_scale=3' applied to a copy of sampling {model_type: {setting: value}}."""
    out = {k: dict(v) for k, v in sampling.items()}
    for item in items:
        key, _, value = item.partition("=")
        kind, _, name = key.partition(".")
        if kind not in out or name not in out[kind] or not value:
            raise ValueError(
                f"eval --sampling: expected MODEL.SETTING=VALUE with MODEL one of {sorted(out)} and SETTING one of "
                f"{sorted(next(iter(out.values())))}, got {item!r}"
            )
        try:
            out[kind][name] = type(out[kind][name])(float(value))
        except ValueError:
            raise ValueError(f"eval --sampling: {key} takes a number, got {value!r}") from None
    return out


@torch.no_grad()  # not set_grad_enabled(False): a caller's grad mode comes back on return
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gptimg_core.eval", description=__doc__)
    # Large enough that each targeted rate's interval can tell the targets apart (docs/training-notes.md).
    ap.add_argument("--n", type=int, default=1000, help="text prompts (class ids and inpaint cases scale with it)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--dev", action="store_true", help="the development sets (DEV_SETS) instead of --n / --seed")
    ap.add_argument(
        "--sampling",
        action="append",
        default=[],
        metavar="MODEL.SETTING=VALUE",
        help="MODEL: t2i, c2i or inpaint (the t2i inpainting); e.g. t2i.cfg_scale=3, inpaint.temperature=0.7",
    )
    ap.add_argument("--json", help="also write the rates to this file")
    ap.add_argument("--device", default="cpu", help="e.g. cuda")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="of the GPTs and the T5 (the VQ: fp32)")
    for name in ("gpt-t2i", "gpt-c2i", "vq", "text-encoder"):
        ap.add_argument(f"--{name}", default=None, help="default: the built-in model")
    a = ap.parse_args(argv)
    try:
        sampling = parse_sampling(a.sampling, EVAL_SAMPLING)
    except ValueError as e:
        ap.error(str(e))
    t0 = time.perf_counter()
    m = load_builtin(a.gpt_t2i, a.gpt_c2i, a.vq, a.text_encoder, device=a.device, dtype=DTYPES[a.dtype])
    m.sampling = sampling
    parts = {
        "text": eval_text, "class": eval_class, "inpaint": eval_inpaint, "reconstruction": eval_reconstruction,
        "binding": eval_binding,
    }  # fmt: skip
    if a.dev:
        sets = DEV_SETS
    else:
        sizes = {
            "text": a.n, "class": max(48, a.n // 3), "inpaint": max(16, a.n // 5), "reconstruction": a.n,
            "binding": max(64, a.n // 2),
        }  # fmt: skip
        sets = {k: [(sizes[k], a.seed + i)] for i, k in enumerate(parts)}
    tally = Tally()
    for k, runs in sets.items():
        for n, seed in runs:
            tally.merge(parts[k](m, n, seed))
    rates = tally.rates()
    width = max(len(k) for k in rates)
    for k, v in rates.items():
        print(f"{k:<{width}}  {100 * v['rate']:5.1f}%  (n={v['n']}, 95%: {100 * v['low']:.1f}-{100 * v['high']:.1f})")
    print(f"evaluated in {time.perf_counter() - t0:.0f} s, sampling {m.sampling}", file=sys.stderr)
    if a.json:
        report = {"rates": rates, "sampling": m.sampling, "sets": sets, "device": a.device, "dtype": a.dtype}
        Path(a.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
