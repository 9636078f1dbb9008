"""The built-in model's whole recipe: `python -m gptimg_core.train --out gptimg_core/builtin`.

VQ tokenizer (each flat palette colour quantised to its own code, train_vq.py's flat_codes) ->
tokenised scene pools (targets with canonical flat tokens, canonical.py) -> t2i GPT + tiny T5 (jointly)
-> c2i GPT (started from the t2i transformer) -> safetensors files, a T5 folder and
training_metrics.json. `--minutes 90` (the default) keeps the run within 90 minutes on any machine: a
pilot measures the stages here and every step count shrinks as far as needed (budget.py); on a fast
enough machine nothing shrinks. `--minutes 0` runs the step counts as written. Measured minutes on a
2-core CPU, and how they vary from day to day: MODEL_CARD.md. `--vq FILE` starts from a trained VQ and
skips stage 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..checkpoint import load_vq, save_model
from ..config import GPTConfig, VQConfig
from ..shapes.world import CLASS_NAMES, COLOUR_NAMES, HELD_OUT_TRIPLES
from ..text_encoder import load_text_encoder
from .budget import Budget, stage_costs
from .data import vocabulary
from .t5_folder import make_t5_folder, save_t5_folder
from .train_gpt import GPTRecipe, tokenize_scenes, train_c2i, train_t2i
from .train_vq import VQRecipe, train_vq

log = logging.getLogger("gptimg_core.train")

VQ_CONFIG = VQConfig(
    ch=32, ch_mult=(1, 1, 2, 2), enc_res_blocks=1, dec_res_blocks=2, z_channels=32,
    codebook_size=1024, embed_dim=8, image_size=64, norm_groups=8,
)  # fmt: skip
TEXT_TOKENS = 16  # the longest prompt of the grammar is 13 T5 tokens with </s>
T5_SIZE = dict(d_model=64, d_ff=128, num_layers=2, num_heads=4, d_kv=16)
T2I_CONFIG = GPTConfig(
    dim=192, n_layer=6, n_head=6, vocab_size=VQ_CONFIG.codebook_size, block_size=64, model_type="t2i",
    caption_dim=T5_SIZE["d_model"], cls_token_num=TEXT_TOKENS,
)  # fmt: skip
# The c2i GPT has the t2i's size: it starts from the trained t2i transformer (train_c2i's init).
C2I_CONFIG = GPTConfig(
    dim=T2I_CONFIG.dim, n_layer=T2I_CONFIG.n_layer, n_head=T2I_CONFIG.n_head, vocab_size=VQ_CONFIG.codebook_size,
    block_size=64, model_type="c2i", num_classes=len(CLASS_NAMES), cls_token_num=1,
)  # fmt: skip
# Flat codes (flat_beta 4) and half of each batch scenes of small objects only, half of those stars: the
# shapes world's flat patches get one code per colour, and small stars, which the VQ drew worst, are drawn.
# bf16 autocast (where native): the minutes it saves buy the t2i its 1.5x steps and scenes
# (docs/training-notes.md, "The VQ in bf16 pays for the t2i's 1.5x").
VQ_RECIPE = VQRecipe(flat_codes=True, flat_beta=4.0, small_share=0.5, bf16=True)
# Inputs: a quarter of the sequences read raw codes, a quarter an edit's mix (raw codes around a rectangle of
# targets: half of them random, half an object's box grown by 0-4 px, as an inpainting mask leaves), half the
# targets (raw_inputs 1/3 of the non-edit ones); what each bought is in docs/training-notes.md.
T2I_RECIPE = GPTRecipe(
    steps=11_250,
    scenes=150_000,
    reading_order=True,
    compile=True,
    raw_inputs=1 / 3,
    edit_inputs=1 / 4,
    edit_holes=1 / 2,
)
C2I_RECIPE = GPTRecipe(steps=2300, scenes=25_000, compile=True)


RECIPES = {"vq": VQ_RECIPE, "t2i": T2I_RECIPE, "c2i": C2I_RECIPE}
PILOT_SCALE = 0.005  # the budget's pilot run: 110 VQ steps, 56 t2i steps


def _scaled(recipe, scale: float, compile: bool = True):
    steps = max(2, int(recipe.steps * scale))
    if hasattr(recipe, "scenes"):
        return replace(
            recipe,
            steps=steps,
            scenes=max(256, int(recipe.scenes * scale)),
            warmup=min(recipe.warmup, steps // 2),
            compile=recipe.compile and compile,
        )
    return replace(recipe, steps=steps)


def run_recipe(out: Path, seed: int, plan: Budget | float, vq_file: str | None = None, compile: bool = True) -> dict:
    """Train every stage into out at plan's scales: one scale for all, or a Budget that picks each stage's
    scale as it starts ('vq', 'tokens', 't2i', 'c2i') and hears how long it took. Returns (and
    writes to training_metrics.json) the metrics."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    started, stage_seconds, recipes = {}, {}, {}

    def stage(name: str) -> float:
        started[name] = time.perf_counter()
        return plan.scale(name) if isinstance(plan, Budget) else plan

    def done(name: str) -> None:
        stage_seconds[name] = round(time.perf_counter() - started[name], 1)
        if isinstance(plan, Budget):
            plan.finished(name, stage_seconds[name])

    if vq_file:
        log.info("1/4 VQ tokenizer: %s", vq_file)
        stage("vq")
        vq, vq_metrics = load_vq(vq_file), {"from": str(vq_file)}
    else:
        log.info("1/4 VQ tokenizer")
        recipes["vq"] = _scaled(VQ_RECIPE, stage("vq"))
        vq, vq_metrics = train_vq(VQ_CONFIG, recipes["vq"], seed=seed)
    save_model(vq, out / "vq.safetensors")
    done("vq")

    log.info("2/4 tokenising scenes")
    scale = stage("tokens")
    t2i_scenes, c2i_scenes = (_scaled(r, scale).scenes for r in (T2I_RECIPE, C2I_RECIPE))
    t2i_pool, table = tokenize_scenes(vq, t2i_scenes, "t2i", seed=seed + 10, reading_order=T2I_RECIPE.reading_order)
    c2i_pool, _ = tokenize_scenes(vq, c2i_scenes, "c2i", seed=seed + 20, table=table)
    tokens = {
        "scenes": len(t2i_pool.conds) + len(c2i_pool.conds),
        "canonical_codes": dict(zip(COLOUR_NAMES, table.tolist(), strict=True)),
        "targets_changed": round(float((t2i_pool.codes != t2i_pool.targets).float().mean()), 3),
    }  # fmt: skip
    done("tokens")

    log.info("3/4 t2i GPT + T5 encoder")
    recipes["t2i"] = replace(_scaled(T2I_RECIPE, stage("t2i"), compile), scenes=t2i_scenes)
    with tempfile.TemporaryDirectory() as tmp:
        make_t5_folder(Path(tmp) / "t5", vocabulary(), seed=seed, **T5_SIZE)
        te = load_text_encoder(Path(tmp) / "t5", max_length=TEXT_TOKENS)
    t2i, t2i_metrics = train_t2i(T2I_CONFIG, te, t2i_pool, recipes["t2i"], seed=seed)
    save_model(t2i, out / "gpt_t2i.safetensors")
    if (out / "t5").exists():
        shutil.rmtree(out / "t5")
    save_t5_folder(out / "t5", te.model, te.tokenizer)
    done("t2i")

    log.info("4/4 c2i GPT")
    recipes["c2i"] = replace(_scaled(C2I_RECIPE, stage("c2i"), compile), scenes=c2i_scenes)
    c2i, c2i_metrics = train_c2i(C2I_CONFIG, c2i_pool, recipes["c2i"], seed=seed, init=t2i)
    save_model(c2i, out / "gpt_c2i.safetensors", extra={"class_names": json.dumps(list(CLASS_NAMES))})
    done("c2i")

    metrics = {
        "vq": vq_metrics, "tokens": tokens, "t2i": t2i_metrics, "c2i": c2i_metrics,
        "recipes": {k: asdict(r) for k, r in recipes.items()}, "seed": seed, "stage_seconds": stage_seconds,
        "held_out_triples": len(HELD_OUT_TRIPLES), "total_seconds": round(time.perf_counter() - t0, 1),
        "threads": torch.get_num_threads(),
    }  # fmt: skip
    if isinstance(plan, Budget):
        metrics["budget"] = plan.report()
    (out / "training_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def plan_budget(
    minutes: float, cap: float, seed: int, vq_file: str | None, compile: bool, pilot_scale: float = PILOT_SCALE
) -> Budget:
    """Run the pilot (the pipeline at pilot_scale, into a temporary folder) and plan the run's scales;
    the budget counts from now, the pilot included."""
    start = time.perf_counter()
    log.info("budget: a pilot run at scale %s measures the stages here", pilot_scale)
    with tempfile.TemporaryDirectory() as tmp:
        pilot = run_recipe(Path(tmp), seed, pilot_scale, vq_file, compile)
    full_steps = {k: r.steps for k, r in RECIPES.items()}
    costs = stage_costs(pilot, full_steps, T2I_RECIPE.scenes + C2I_RECIPE.scenes)
    budget = Budget(costs, minutes * 60, cap=cap, start=start)
    log.info(
        "budget: seconds per stage, fixed + at scale 1: %s",
        {k: (round(c.fixed), round(c.per_scale)) for k, c in costs.items()},
    )
    log.info(
        "budget: pilot %.0f s; the recipe at scale %s would take %.0f s, the budget leaves %.0f s",
        time.perf_counter() - start, cap, budget.estimate(cap), budget.deadline - time.perf_counter(),
    )  # fmt: skip
    return budget


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gptimg_core.train", description=__doc__)
    ap.add_argument("--out", required=True, help="output folder (gptimg_core/builtin to replace the shipped model)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every step count (0.01 for a smoke run)")
    ap.add_argument(
        "--minutes",
        type=float,
        default=90,
        help="finish within this many minutes: a pilot run measures the stages here, and every stage's steps "
        "shrink (never grow past --scale) to fit; 0: run the step counts as written",
    )
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--vq",
        default=None,
        help="a trained VQ (.safetensors) to start from: skips stage 1",
    )
    ap.add_argument("--no-compile", action="store_true", help="train the GPTs eager (slower; torch.compile needs g++)")
    a = ap.parse_args(argv)
    if a.minutes < 0 or a.scale <= 0:
        ap.error(f"--minutes must be >= 0 and --scale > 0, got {a.minutes} and {a.scale}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if a.threads:
        torch.set_num_threads(a.threads)
    out = Path(a.out)
    t0 = time.perf_counter()
    budget = None
    if a.minutes and a.scale > PILOT_SCALE:  # a run no bigger than the pilot needs no plan
        try:
            budget = plan_budget(a.minutes, a.scale, a.seed, a.vq, not a.no_compile)
        except ValueError as e:
            ap.error(str(e))
    metrics = run_recipe(out, a.seed, budget or a.scale, a.vq, not a.no_compile)
    log.info(
        "done in %.0f s: %s",
        time.perf_counter() - t0,
        json.dumps({k: metrics[k] for k in ("vq", "t2i", "c2i")}),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
