"""Live previews of a partly generated token grid, cheap enough to show while sampling.

A `PreviewMap` gives every code a colour (the palette), so a preview is one table lookup. A code's colour
is the mean of its own decode as a one-token image ("decoded"). Where decoding all K codes alone is
expected to take longer than EXACT_PALETTE_BUDGET_S, a sample of them is decoded and every other code
takes the colour of its nearest decoded code in the (l2-normalised) codebook, or of a linear map fitted to
the sample, whichever predicts held-out decoded codes better ("sampled"). On the built-in VQ, against
tokens decoded in context: mean error 10 RGB levels decoded, about 15 sampled from 64 codes; the linear
map fitted to tokens decoded in context, used before, was 39, and drew the blue background purple. A real VQ decode looks better but costs far more: `PreviewScheduler` decides, token by token,
which kind of preview (if any) to show so that previews take at most `budget` (10%) of the measured
sampling time; the caller shows the finished image at the last token.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .images import to_uint8
from .vq import VQModel

GREY = 128  # colour of cells not generated yet
FIT_SIDE = 8  # token grids decoded while fitting: FIT_BATCH grids of FIT_SIDE x FIT_SIDE
FIT_BATCH = 8  # half random codes, half the codes of encoded smooth colour fields
MAX_TILED = 16  # a preview of a batch shows at most this many images
EXACT_PALETTE_BUDGET_S = 2.0  # decode every code on its own when that is expected to take at most this (once a VQ)
EXACT_PALETTE_CHUNK = 1024  # codes decoded at once
MIN_SAMPLED = 256  # a sampled palette decodes at least this many codes (or all K)
PALETTES = ("auto", "decoded", "sampled")


@dataclass(frozen=True)
class PreviewMap:
    """Per-VQ preview data: palette (K, 3) uint8 is every code's preview colour."""

    palette: np.ndarray
    neutral_code: int  # the code closest to mid grey: fills the not-yet-drawn part of a full decode
    decode_fixed_s: float  # measured VQ decode cost: fixed part (s) ...
    decode_per_token_s: float  # ... plus this per decoded token
    palette_per_pixel_s: float  # measured cost of a palette preview (render + tile) per output pixel

    def decode_estimate(self, tokens: int) -> float:
        """Expected seconds of one VQ decode of `tokens` tokens (from the timings taken while fitting)."""
        return self.decode_fixed_s + self.decode_per_token_s * tokens

    def palette_estimate(self, pixels: int) -> float:
        """Expected seconds of one palette preview of `pixels` output pixels."""
        return self.palette_per_pixel_s * pixels


def _timed_decode(vq: VQModel, codes: Tensor) -> tuple[Tensor, float]:
    t0 = time.perf_counter()
    pixels = vq.decode(codes).cpu()  # .cpu() waits for the device: the timing covers the whole decode
    return pixels, time.perf_counter() - t0


def smooth_images(n: int, side: int, generator: torch.Generator) -> Tensor:
    """n random smooth colour fields (n, 3, side, side) in [-1, 1]: 3x3 random colours, bilinearly blended."""
    corners = torch.rand(n, 3, 3, 3, generator=generator) * 2 - 1
    return F.interpolate(corners, size=(side, side), mode="bilinear", align_corners=True)


@torch.no_grad()
def fit_preview_map(
    vq: VQModel,
    *,
    seed: int = 0,
    palette: str = "auto",
    sampled: int | None = None,
    exact_budget_s: float = EXACT_PALETTE_BUDGET_S,
) -> PreviewMap:
    """Time the decodes of FIT_BATCH grids of FIT_SIDE x FIT_SIDE tokens (half random codes, half the codes
    of smooth colour fields, as real images use them), then colour every code.

    palette: "decoded" (each code decoded alone), "sampled" (`sampled` codes decoded alone, default
    MIN_SAMPLED, the rest coloured as their nearest one), or "auto": decoded when all K are expected to take
    at most exact_budget_s, else sampled with as many codes as that budget allows. Only "auto" reads the
    clock to choose; the timings otherwise only feed the preview scheduler's estimates."""
    if palette not in PALETTES:
        raise ValueError(f"fit_preview_map: palette must be one of {PALETTES}, got {palette!r}")
    if sampled is not None and (isinstance(sampled, bool) or not isinstance(sampled, int) or sampled < 1):
        raise ValueError(f"fit_preview_map: sampled must be a whole number of codes >= 1, got {sampled!r}")
    g = torch.Generator().manual_seed(seed)
    K, ds, B, s = vq.codebook_size, vq.downsample, FIT_BATCH, FIT_SIDE
    device = vq.quantize.embedding.weight.device
    codes = torch.randint(K, (B, s, s), generator=g)
    codes[B // 2 :] = vq.encode(smooth_images(B - B // 2, s * ds, g).to(device)).cpu()
    _timed_decode(vq, codes[:1])  # warm-up: first calls allocate and pick kernels
    _, t_batch = _timed_decode(vq, codes)  # (B, 3, s*ds, s*ds)
    _, t_one = _timed_decode(vq, codes[:1])
    n1, nB = s * s, B * s * s
    per_token = max((t_batch - t_one) / (nB - n1), 0.0)
    if palette == "auto":
        palette = "decoded" if K * per_token <= exact_budget_s else "sampled"
        if sampled is None:  # as many as the budget allows, but never fewer than MIN_SAMPLED
            sampled = max(MIN_SAMPLED, int(exact_budget_s / per_token)) if per_token > 0 else K
    if palette == "decoded":
        colours = _decoded_palette(vq, torch.arange(K), device)
    else:
        picked = _pick_codes(K, codes[B // 2 :], min(K, sampled or MIN_SAMPLED), g)
        colours = _sampled_palette(vq, picked, _decoded_palette(vq, picked, device), g)
    neutral = int(np.abs(colours.astype(np.int32) - GREY).sum(1).argmin())
    pmap = PreviewMap(colours, neutral, max(t_one - per_token * n1, 0.0), per_token, 0.0)
    t0 = time.perf_counter()
    sheet = tile(render_palette(pmap, codes[:4].reshape(4, -1), (s, s), 256 // (2 * s)))  # a 2x2 sheet, 256 px
    per_pixel = (time.perf_counter() - t0) / (sheet.shape[0] * sheet.shape[1])
    return dataclasses.replace(pmap, palette_per_pixel_s=per_pixel)


def _pick_codes(K: int, used: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """n distinct codes (sorted): those of used (codes real images take) first, then random ones."""
    first = torch.unique(used.reshape(-1))[:n]
    rest = torch.ones(K, dtype=torch.bool)
    rest[first] = False
    others = torch.nonzero(rest).squeeze(1)
    others = others[torch.randperm(len(others), generator=generator)[: n - len(first)]]
    return torch.cat([first, others]).sort().values


@torch.no_grad()
def _decoded_palette(vq: VQModel, codes: Tensor, device: torch.device) -> np.ndarray:
    """(n, 3) uint8: each of codes (n,)'s mean colour when decoded as a one-token image."""
    out = []
    for chunk in codes.split(EXACT_PALETTE_CHUNK):
        pixels = vq.decode(chunk.to(device)[:, None, None]).float().cpu()  # (k, 3, ds, ds)
        out.append(pixels.mean((2, 3)))
    return (torch.cat(out) * 127.5 + 128.0).clamp(0, 255).to(torch.uint8).numpy()


@torch.no_grad()
def _sampled_palette(vq: VQModel, picked: Tensor, colours: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """(K, 3) uint8 from the decoded colours (n, 3) of the picked codes (n,): the picked keep theirs, every
    other code gets the better, on a held-out quarter of the picked, of two guesses from the codebook: its
    nearest picked code's colour (cosine), or a least-squares linear map [embedding, 1] -> colour."""
    book = F.normalize(vq.quantize.codebook().detach().double().cpu(), dim=-1)  # (K, e)
    X = torch.cat([book, torch.ones(len(book), 1, dtype=torch.float64)], 1)  # (K, e + 1)
    y = torch.from_numpy(colours).double()  # (n, 3)
    order = torch.randperm(len(picked), generator=generator)
    held, fit = order[: len(order) // 4], order[len(order) // 4 :]

    def nearest(known: Tensor, rows: Tensor) -> Tensor:
        sim = torch.cat([r @ book[picked[known]].T for r in book[rows].split(4096)])  # (rows, known)
        return y[known][sim.argmax(1)]

    def linear(known: Tensor, rows: Tensor) -> Tensor:
        return X[rows] @ torch.linalg.lstsq(X[picked[known]], y[known]).solution

    guesses = (nearest, linear)
    held_err = [(guess(fit, picked[held]) - y[held]).abs().mean() if len(held) else 0.0 for guess in guesses]
    best = guesses[int(np.argmin(held_err))]
    out = best(torch.arange(len(picked)), torch.arange(len(book))).clamp(0, 255).round().to(torch.uint8).numpy()
    out[picked.numpy()] = colours
    return out


def render_palette(pmap: PreviewMap, tokens: Tensor, grid: tuple[int, int], cell: int) -> np.ndarray:
    """Tokens so far (B, t) in raster order -> uint8 (B, h*cell, w*cell, 3); undrawn cells grey."""
    h, w = grid
    codes = tokens.reshape(tokens.shape[0], -1).cpu().numpy()
    B, t = codes.shape
    out = np.full((B, h * w, 3), GREY, dtype=np.uint8)
    out[:, :t] = pmap.palette[codes]
    return _upscale(out.reshape(B, h, w, 3), cell)


def render_decoded(vq: VQModel, pmap: PreviewMap, tokens: Tensor, grid: tuple[int, int], cell: int) -> np.ndarray:
    """Tokens so far (B, t) -> a real VQ decode as uint8 (B, h*cell, w*cell, 3); undrawn cells grey.

    The undrawn tokens are filled with the palette's most neutral code before decoding.
    """
    h, w = grid
    B, t = tokens.shape[0], tokens.reshape(tokens.shape[0], -1).shape[1]
    codes = torch.full((B, h * w), pmap.neutral_code, dtype=torch.long, device=tokens.device)
    codes[:, :t] = tokens.reshape(B, -1)
    image = to_uint8(vq.decode(codes.view(B, h, w)))  # (B, h*ds, w*ds, 3)
    ds = image.shape[1] // h
    undrawn = (np.arange(h * w) >= t).reshape(h, w).repeat(ds, 0).repeat(ds, 1)  # (h*ds, w*ds) pixels
    image[:, undrawn] = GREY
    return image if cell == ds else _resize_cells(image, h, w, cell)


def _upscale(cells: np.ndarray, cell: int) -> np.ndarray:
    """(B, h, w, 3) -> (B, h*cell, w*cell, 3) by repeating each cell (nearest neighbour)."""
    return cells.repeat(cell, axis=1).repeat(cell, axis=2)


def _resize_cells(image: np.ndarray, h: int, w: int, cell: int) -> np.ndarray:
    """A decoded image (B, h*ds, w*ds, 3) -> (B, h*cell, w*cell, 3) (area average down, nearest up)."""
    x = torch.from_numpy(image).permute(0, 3, 1, 2).float()
    mode = "area" if cell < image.shape[1] // h else "nearest"
    y = F.interpolate(x, size=(h * cell, w * cell), mode=mode)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def preview_cell(
    grid: tuple[int, int], downsample: int, images: int = 1, *, min_side: int = 256, max_side: int = 512
) -> int:
    """Pixels per token in a preview of `images` tiled images: the VQ's downsample, raised so the sheet
    is at least min_side wide (crisp cells once the UI scales it), lowered so it stays within max_side."""
    cols = math.ceil(math.sqrt(max(1, min(images, MAX_TILED))))
    side = max(grid) * cols
    cell = max(downsample, math.ceil(min_side / side))
    return max(1, min(cell, max_side // side))


def tile(images: np.ndarray) -> np.ndarray:
    """uint8 (B, H, W, 3) -> one (rows*H, cols*W, 3) image of the first MAX_TILED, near-square, 2px gaps."""
    images = images[:MAX_TILED]
    B, H, W, _ = images.shape
    cols = math.ceil(math.sqrt(B))
    rows = math.ceil(B / cols)
    gap = 2 if B > 1 else 0
    out = np.zeros((rows * H + (rows - 1) * gap, cols * W + (cols - 1) * gap, 3), dtype=np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (H + gap) : r * (H + gap) + H, c * (W + gap) : c * (W + gap) + W] = im
    return out


class PreviewScheduler:
    """Decides, at each sampled token, whether to show a preview and of which kind.

    A preview is due each time `every_rows` more token rows are complete (none after the last token:
    the caller shows the finished image then, outside this budget). Kinds, best first: "decode" (a real VQ decode) and "palette"
    (the cheap map). A kind runs only if the preview time spent so far plus its expected cost stays
    within `budget` times the sampling time so far (decodes within `decode_share` of that, so cheap
    previews keep some room); then the total stays within budget as long as no preview costs more
    than expected. Expected costs start from the caller's estimates, counted `unmeasured` times over,
    and then follow the measured ones (never below the latest), counted `safety` times over; a
    preview that took longer than that is counted in `overruns` (on a machine that got busier). Wrap
    each preview in `measure(kind)`.
    """

    def __init__(
        self,
        total: int,
        row_len: int,
        estimates: dict[str, float],
        *,
        every_rows: int = 1,
        budget: float = 0.1,
        decode_share: float = 0.75,
        safety: float = 1.25,
        unmeasured: float = 2.5,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        unknown = set(estimates) - {"decode", "palette"}
        if unknown:
            raise ValueError(f"PreviewScheduler: estimates has unknown kinds {sorted(unknown)}")
        if not 0 < budget < 1:
            raise ValueError(f"PreviewScheduler: budget must be in (0, 1), got {budget}")
        self.total, self.row_len, self.every_rows = total, row_len, max(1, every_rows)
        self.budget, self.decode_share = budget, decode_share
        self.cost = dict(estimates)
        self.factor = dict.fromkeys(estimates, unmeasured)
        self.safety = safety
        self.count = dict.fromkeys(estimates, 0)
        self.skipped = self.overruns = 0
        self.spent = 0.0  # seconds inside measure()
        self.clock = clock
        self.start = clock()
        self._slot = 0  # index of the last due slot handled

    def sampling_seconds(self) -> float:
        """Time since the start that was not spent on previews."""
        return self.clock() - self.start - self.spent

    def due(self, step: int) -> str | None:
        """Kind of preview to show after `step` tokens (None: no preview now)."""
        slot = (step // self.row_len) // self.every_rows
        if slot <= self._slot or step >= self.total:
            return None
        self._slot = slot
        allowed = self.budget * self.sampling_seconds()
        for kind, share in (("decode", self.decode_share), ("palette", 1.0)):
            if kind in self.cost and self.spent + self.factor[kind] * self.cost[kind] <= share * allowed:
                return kind
        self.skipped += 1
        return None

    @contextmanager
    def measure(self, kind: str) -> Iterator[None]:
        """Time one preview of `kind` (counts as preview time, and updates that kind's expected cost)."""
        t0 = self.clock()
        try:
            yield
        finally:
            dt = self.clock() - t0
            self.spent += dt
            self.overruns += dt > self.factor[kind] * self.cost[kind]
            self.count[kind] = self.count.get(kind, 0) + 1
            self.cost[kind] = max(dt, 0.5 * self.cost[kind] + 0.5 * dt) if self.count[kind] > 1 else dt
            self.factor[kind] = self.safety

    def stats(self) -> dict[str, float | int]:
        """Preview and sampling seconds, their ratio, and how many previews of each kind ran or were skipped."""
        sampling = self.sampling_seconds()
        return {
            "preview_s": self.spent,
            "sampling_s": sampling,
            "ratio": self.spent / sampling if sampling > 0 else 0.0,
            "skipped": self.skipped,
            "overruns": self.overruns,
            **{f"{k}_previews": v for k, v in self.count.items()},
        }


def every_rows_for(grid_rows: int) -> int:
    """Cadence of previews: about 8 per image (every row of an 8-row grid, every 2nd of 16, ...)."""
    return max(1, grid_rows // 8)


__all__ = [
    "PreviewMap",
    "PreviewScheduler",
    "every_rows_for",
    "fit_preview_map",
    "preview_cell",
    "render_decoded",
    "render_palette",
    "tile",
]
