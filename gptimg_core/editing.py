"""Token-level editing: inpainting with a keep-mask, look-ahead particles, outpainting, variations,
img2img. Codes are (B, h, w) LongTensors; `keep` is a bool (B, h, w) grid, True = token stays.
Every kept token comes back exactly unchanged."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .checks import check_callables, check_finite, check_float, check_int, check_model
from .decoding import Callback
from .generate import run_sampler
from .memory import check_memory
from .particles import particle_fills, pick
from .sampling import Generators, image_generators
from .settings import resolve
from .token_model import Condition, TokenModel


def pixel_mask_to_tokens(
    mask: Tensor, downsample: int, *, mode: str = "any", threshold: float = 0.5, grow: int = 0
) -> Tensor:
    """Pixel mask (B, H, W) or (H, W), 1 = repaint -> token mask (B, H/ds, W/ds) bool, True = resample.

    mode "any": a token is resampled if any of its pixels is masked; "threshold": if at least
    `threshold` of its pixels are. grow: dilate by that many whole tokens.
    """
    where = "pixel_mask_to_tokens"
    if not isinstance(mask, Tensor) or mask.dim() not in (2, 3):
        raise ValueError(
            f"{where}: mask must be a (B, H, W) or (H, W) tensor, got {getattr(mask, 'shape', type(mask))}"
        )
    downsample = check_int(where, "downsample", downsample, minimum=1, hint=" (the VQ's, e.g. 8 or 16)")
    grow = check_int(where, "grow", grow, minimum=0, hint=" tokens")
    threshold = check_float(where, "threshold", threshold, minimum=0.0, maximum=1.0)
    if mask.is_complex():
        raise TypeError(f"{where}: mask must be a bool, integer or float tensor, got {mask.dtype}")
    check_finite(where, "mask", mask)
    if mask.numel() and mask.dtype != torch.bool and (float(mask.min()) < 0 or float(mask.max()) > 1):
        raise ValueError(
            f"{where}: mask values must lie in [0, 1] (1 = repaint), got [{float(mask.min())}, {float(mask.max())}]; "
            f"divide a 0..255 mask by 255"
        )
    m = mask.float().unsqueeze(0) if mask.dim() == 2 else mask.float()
    H, W = m.shape[-2:]
    if m.numel() == 0:
        raise ValueError(f"{where}: mask is empty (shape {tuple(mask.shape)})")
    if H % downsample or W % downsample:
        raise ValueError(f"{where}: mask size {W}x{H} is not a multiple of the tokenizer's downsample {downsample}")
    if mode not in ("any", "threshold"):
        raise ValueError(f"{where}: mode must be 'any' or 'threshold', got {mode!r}")
    cover = F.avg_pool2d(m.unsqueeze(1), downsample).squeeze(1)  # (B, h, w) fraction masked
    out = cover > 0 if mode == "any" else cover >= threshold
    if grow:
        out = F.max_pool2d(out.float().unsqueeze(1), 2 * grow + 1, stride=1, padding=grow).squeeze(1) > 0
    return out


def _check_grid(model: TokenModel, codes: Tensor, keep: Tensor, where: str) -> None:
    check_model(model, where)
    g, V = model.grid, model.vocab_size
    if not isinstance(codes, Tensor) or codes.dim() != 3 or codes.is_floating_point() or codes.dtype == torch.bool:
        raise ValueError(
            f"{where}: codes must be an integer tensor (B, h, w), got {getattr(codes, 'shape', type(codes))}"
        )
    if codes.shape[0] == 0:
        raise ValueError(f"{where}: codes is an empty batch (shape {tuple(codes.shape)})")
    if tuple(codes.shape[1:]) != (g, g):
        raise ValueError(
            f"{where}: codes form a {codes.shape[1]}x{codes.shape[2]} grid but the model draws {g}x{g}; "
            f"encode a {g * 8}px (VQ-8) / {g * 16}px (VQ-16) image, or place the tokens with outpaint()"
        )
    if int(codes.min()) < 0 or int(codes.max()) >= V:
        raise ValueError(f"{where}: codes must lie in [0, {V}) (the model's vocabulary); are they from another VQ?")
    if not isinstance(keep, Tensor) or keep.dtype != torch.bool or keep.shape != codes.shape:
        raise ValueError(
            f"{where}: keep must be a bool tensor shaped like codes {tuple(codes.shape)}, got "
            f"{(tuple(keep.shape), keep.dtype) if isinstance(keep, Tensor) else type(keep).__name__}"
        )


def _check_codes_3d(codes: Tensor, where: str) -> None:
    if not isinstance(codes, Tensor) or codes.dim() != 3 or codes.is_floating_point() or codes.dtype == torch.bool:
        got = (tuple(codes.shape), codes.dtype) if isinstance(codes, Tensor) else type(codes).__name__
        raise ValueError(
            f"{where}: codes must be an integer tensor (B, h, w) (a 1-D row? add .view(B, h, w)), got {got}"
        )


def _check_shape(shape: object, where: str) -> tuple[int, int, int]:
    if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) != 3:
        raise TypeError(f"{where}: shape must be (B, h, w), three ints, got {shape!r}")
    # sides bounded far past any model's grid: a mistaken (1, 10**6, 10**6) would allocate a terabyte
    return tuple(
        check_int(where, f"shape[{i}]", n, minimum=1 if i else 0, maximum=1024 if i else 1 << 16)
        for i, n in enumerate(shape)
    )


def token_logp(model: TokenModel, cond: Condition, tokens: Tensor) -> Tensor:
    """Log-probability (B, N) of each token given the condition and the tokens before it (teacher
    forcing, one forward pass). tokens (B, N); cond unguided (batch B)."""
    with torch.no_grad():
        state = model.start(cond)
        first = state.prefill()[:, None]  # (B, 1, V)
        logits = torch.cat([first, state.feed(tokens[:, :-1], 0)], dim=1)  # (B, N, V)
    return logits.log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def score_known(model: TokenModel, cond: Condition, tokens: Tensor, keep: Tensor) -> Tensor:
    """Log-likelihood (B,) of the kept tokens that follow the first resampled one, under the
    conditional model (teacher forcing). tokens, keep (B, N); cond unguided (batch B)."""
    after = (~keep).long().cumsum(1) > 0  # positions at or after the first resampled token
    return (token_logp(model, cond, tokens) * (keep & after)).sum(1)


def inpaint(
    model: TokenModel,
    codes: Tensor,
    keep: Tensor,
    cond: Tensor,
    *,
    cond_mask: Tensor | None = None,
    uncond: Tensor | None = None,
    uncond_mask: Tensor | None = None,
    cfg_scale: float | None = None,
    cfg_interval: int | None = None,
    cfg_schedule: str | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    particles: int | None = None,
    passes: int = 1,
    decoding: str | None = None,
    window: int | None = None,
    seed: int | None = None,
    generator: Generators = None,
    callback: Callback | None = None,
) -> Tensor:
    """Resample the tokens where keep is False; the others come back unchanged. -> (B, h, w).

    Every sampling setting left None is the model's recommendation for editing (model.recommended).
    Raster order means a resampled token sees only the tokens before it. With particles > 1, each
    round runs that many fills per image side by side as particles (particles.py): every kept token
    weighs the fills by how likely the model finds it after them, and the image keeps the fill with
    the best weight plus a share of its own likelihood under the prompt (particles.pick). `passes`
    rounds of particles keep the best fill of all by the same score. Where no kept token
    follows the hole (variations, outpainting at the end) there is nothing to weigh fills by, and one
    fill is drawn. decoding, window, seed and generator as generate takes them."""
    where = "inpaint"
    _check_grid(model, codes, keep, where)
    if particles is not None:
        check_int(where, "particles", particles, minimum=1, hint=" (1 = one fill)")
    check_int(where, "passes", passes, minimum=1)
    check_callables(where, generator, callback)
    opts = resolve(
        model, "edit", cfg_scale=cfg_scale, cfg_interval=cfg_interval, cfg_schedule=cfg_schedule,
        temperature=temperature, top_k=top_k, top_p=top_p, decoding=decoding, window=window,
    )  # fmt: skip
    opts.check(where)
    c = model.condition(cond, cond_mask, uncond, uncond_mask, guided=opts.uses_cfg, where=where)
    if c.batch != codes.shape[0]:
        raise ValueError(f"{where}: cond has batch {c.batch} but codes has {codes.shape[0]} images")
    K = model.recommended.particles if particles is None else particles
    check_memory(model, c.batch, K, guided=opts.uses_cfg, where=where)
    if seed is not None:
        generator = image_generators(seed, c.batch)
    B, g = codes.shape[0], model.grid
    device = model.device
    known, kmask = codes.reshape(B, -1).to(device), keep.reshape(B, -1).to(device)
    if bool(kmask.all()):
        return codes.clone()
    after_hole = (~kmask).cumsum(1).gt(0) & kmask  # kept tokens after an image's first free one
    if (K == 1 and passes == 1) or not bool(after_hole.any()):
        return run_sampler(model, c, opts, known=known, keep=kmask, generator=generator, callback=callback).view(
            B, g, g
        )
    rounds = _Rounds(callback, passes)
    picked = [
        pick(*particle_fills(model, c, opts, known, kmask, K, generator=generator, callback=rounds.for_pass(p)))
        for p in range(passes)
    ]  # each (fill (B, N), score (B,))
    fills, scores = torch.stack([f for f, _ in picked]), torch.stack([s for _, s in picked])  # (P, B, N), (P, B)
    kept = fills[scores.argmax(0), torch.arange(B, device=device)]  # (B, N)
    if callback is not None:  # the last step shows the kept fills (the passes showed each image's first particle)
        callback(passes * g * g, passes * g * g, kept)
    return kept.view(B, g, g)


class _Rounds:
    """Maps each pass's progress onto one overall (step, total) for the caller's callback."""

    def __init__(self, callback: Callback | None, passes: int) -> None:
        self.callback, self.passes = callback, passes

    def for_pass(self, p: int) -> Callback | None:
        if self.callback is None:
            return None

        def report(step: int, total: int, tokens: Tensor) -> None:
            self.callback(p * total + step, self.passes * total, tokens)

        return report


def place_tokens(codes: Tensor, grid: tuple[int, int], top: int = 0, left: int = 0) -> tuple[Tensor, Tensor]:
    """Put codes (B, h, w) at (top, left) of an empty (B, H, W) grid; offsets may be negative
    (shifted, cropped). -> (codes (B, H, W), keep (B, H, W) bool, True where a code was placed)."""
    _check_codes_3d(codes, "place_tokens")
    if not (isinstance(grid, (tuple, list)) and len(grid) == 2):
        raise TypeError(f"place_tokens: grid must be a (H, W) pair of ints, got {grid!r}")
    H = check_int("place_tokens", "grid[0]", grid[0], minimum=1)
    W = check_int("place_tokens", "grid[1]", grid[1], minimum=1)
    top, left = check_int("place_tokens", "top", top), check_int("place_tokens", "left", left)
    B, h, w = codes.shape
    out = torch.zeros(B, H, W, dtype=codes.dtype, device=codes.device)
    keep = torch.zeros(B, H, W, dtype=torch.bool, device=codes.device)
    r0, r1 = max(top, 0), min(top + h, H)
    c0, c1 = max(left, 0), min(left + w, W)
    if r0 >= r1 or c0 >= c1:
        raise ValueError(f"place_tokens: a {h}x{w} grid at ({top}, {left}) falls entirely outside the {H}x{W} grid")
    out[:, r0:r1, c0:c1] = codes[:, r0 - top : r1 - top, c0 - left : c1 - left]
    keep[:, r0:r1, c0:c1] = True
    return out, keep


def outpaint(model: TokenModel, codes: Tensor, cond: Tensor, *, top: int = 0, left: int = 0, **kwargs) -> Tensor:
    """Place codes (B, h, w) at (top, left) in the model's grid and generate the rest (see inpaint)."""
    check_model(model, "outpaint")
    _check_codes_3d(codes, "outpaint")
    top, left = check_int("outpaint", "top", top), check_int("outpaint", "left", left)
    g = model.grid
    placed, keep = place_tokens(codes, (g, g), top, left)
    return inpaint(model, placed, keep, cond, **kwargs)


def variation_keep(shape: tuple[int, int, int], keep_rows: int) -> Tensor:
    """Keep-mask (B, h, w) that keeps the first keep_rows token rows and resamples the rest."""
    B, h, w = _check_shape(shape, "variation_keep")
    check_int("variation_keep", "keep_rows", keep_rows, minimum=0, maximum=h)
    keep = torch.zeros(shape, dtype=torch.bool)
    keep[:, :keep_rows] = True
    return keep


def img2img_keep(shape: tuple[int, int, int], strength: float, generator: Generators = None) -> Tensor:
    """Keep-mask (B, h, w) resampling a random `strength` fraction of each image's tokens; image b draws
    from generator[b] when given one per image."""
    strength = check_float("img2img_keep", "strength", strength, minimum=0.0, maximum=1.0)
    check_callables("img2img_keep", generator)
    B, h, w = _check_shape(shape, "img2img_keep")
    gens = [generator] * B if generator is None or isinstance(generator, torch.Generator) else list(generator)
    if len(gens) != B:
        raise ValueError(f"img2img_keep: {len(gens)} generators for {B} images; give one per image or one for all")
    n = round(strength * h * w)
    keep = torch.ones(B, h * w, dtype=torch.bool)
    for b in range(B):
        keep[b, torch.randperm(h * w, generator=gens[b])[:n]] = False
    return keep.view(B, h, w)
