"""Property-based fuzzing of the public API on tiny random models: every call either returns a valid result
or raises ValueError/TypeError (the project's errors subclass them) whose message names the function; the
models draw the same tokens for the same seed afterwards. Derandomized with a fixed max_examples
(conftest.py's profile), so each run tries the same cases in seconds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gptimg_core import (
    VQConfig,
    VQModel,
    from_uint8,
    generate,
    img2img_keep,
    inpaint,
    outpaint,
    pixel_mask_to_tokens,
    place_tokens,
    variation_keep,
)
from gptimg_core.builtin.train.t5_folder import make_t5_folder

from tiny import tiny_gpt

EXAMPLES = settings(max_examples=60)
GPTS = {kind: tiny_gpt(kind) for kind in ("c2i", "t2i")}
torch.manual_seed(0)
VQ = VQModel(
    VQConfig(ch=8, ch_mult=(1, 2), enc_res_blocks=1, dec_res_blocks=1, z_channels=8, codebook_size=64, embed_dim=4,
             norm_groups=4)
).eval()  # fmt: skip


def _seeded(kind: str) -> torch.Tensor:
    cond = torch.tensor([1, 2]) if kind == "c2i" else torch.randn(2, 6, 16, generator=torch.Generator().manual_seed(1))
    return generate(GPTS[kind], cond, cfg_scale=2.0, generator=torch.Generator().manual_seed(3))


BEFORE = {kind: _seeded(kind) for kind in GPTS}

# Values of every kind a careless caller passes as a number
numbers = st.one_of(
    st.integers(-3, 6),
    st.sampled_from([0, 1, 10**9, -(10**9)]),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.5, 1.5, 2.0]),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.just(np.float32(2.0)),
    st.just(np.int64(2)),
)
DTYPES = [
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.uint8,
    torch.bool,
]


@st.composite
def tensors(draw, shape=None, dtypes=DTYPES, lo=-3.0, hi=70.0):
    """A tensor of a drawn shape and dtype, sometimes holding NaN or inf."""
    if shape is None:
        shape = draw(st.lists(st.integers(0, 5), min_size=0, max_size=4))
    dtype = draw(st.sampled_from(dtypes))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    x = torch.rand(shape, generator=g, dtype=torch.float64) * (hi - lo) + lo
    if dtype.is_floating_point:
        if x.numel() and draw(st.booleans()):
            x.view(-1)[draw(st.integers(0, x.numel() - 1))] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        return x.to(dtype)
    if dtype == torch.bool:
        return x > (lo + hi) / 2
    if dtype == torch.uint8:
        x = x.clamp(min=0)
    return x.round().to(dtype)


def _valid_or_named(call, *names: str):
    """Run call(); a raised error must be a ValueError/TypeError naming one of `names`."""
    try:
        return call()
    except (ValueError, TypeError) as e:
        assert any(f"{n}:" in str(e) for n in names), f"{type(e).__name__} does not name {names}: {e}"
        return None


def _never_valid(v) -> bool:
    """A value no numeric argument may take: a bool, None, a string, NaN or inf, or a non-finite tensor."""
    if isinstance(v, torch.Tensor):
        return v.is_floating_point() and v.numel() > 0 and not bool(torch.isfinite(v).all())
    return isinstance(v, (bool, str, type(None))) or (isinstance(v, float) and not math.isfinite(v))


def _check_tokens(out, gpt):
    g, V = gpt.cfg.grid, gpt.cfg.vocab_size
    assert out.dtype == torch.long and out.dim() == 3 and out.shape[1:] == (g, g)
    assert int(out.min()) >= 0 and int(out.max()) < V


def sampling(count: str) -> st.SearchStrategy:
    """Sampling keywords, `count` being generate's best_of or the editing functions' particles."""
    return st.fixed_dictionaries(
        {},
        optional={
            "cfg_scale": numbers,
            "cfg_interval": numbers,
            "cfg_schedule": st.sampled_from(["constant", "linear", "cosine", 1]),
            "decoding": st.sampled_from(["ar", "sjd", "jacobi", "fast", 1]),
            "window": numbers,
            "temperature": numbers,
            "top_k": numbers,
            "top_p": numbers,
            count: numbers,
        },
    )


SAMPLING, EDITING = sampling("best_of"), sampling("particles")
NAMED = ("cfg_schedule", "decoding")  # arguments whose valid values are strings


def _numeric(kwargs: dict) -> list:
    return [v for k, v in kwargs.items() if k not in NAMED]


@EXAMPLES
@given(kind=st.sampled_from(["c2i", "t2i"]), cond=st.one_of(tensors(), st.just("3"), st.just([1, 2])),
       mask=st.one_of(st.none(), tensors()), kwargs=SAMPLING)  # fmt: skip
def test_generate_returns_tokens_or_a_named_error(kind, cond, mask, kwargs):
    gpt = GPTS[kind]
    out = _valid_or_named(
        lambda: generate(gpt, cond, cond_mask=mask, generator=torch.Generator().manual_seed(0), **kwargs), "generate"
    )
    if out is not None:
        _check_tokens(out, gpt)
        assert not any(_never_valid(v) for v in [cond, *_numeric(kwargs)]), "a silent result from a bad input"


@EXAMPLES
@given(
    codes=st.one_of(tensors(), tensors(shape=(1, 4, 4), dtypes=[torch.int64, torch.uint8])),
    keep=st.one_of(tensors(), tensors(shape=(1, 4, 4), dtypes=[torch.bool])),
    cond=st.one_of(st.just(torch.tensor([1])), tensors()),
    passes=st.one_of(st.just(1), numbers),
    kwargs=EDITING,
)
def test_inpaint_keeps_or_names(codes, keep, cond, passes, kwargs):
    gpt = GPTS["c2i"]
    out = _valid_or_named(
        lambda: inpaint(gpt, codes, keep, cond, passes=passes, generator=torch.Generator().manual_seed(0), **kwargs),
        "inpaint",
    )
    if out is not None:
        _check_tokens(out, gpt)
        assert torch.equal(out[keep], codes.long()[keep])  # kept tokens come back exactly
        assert not any(_never_valid(v) for v in [cond, passes, *_numeric(kwargs)]), "a silent result from a bad input"


@EXAMPLES
@given(codes=st.one_of(tensors(), tensors(shape=(1, 2, 3), dtypes=[torch.int64])), top=numbers, left=numbers,
       kwargs=EDITING)  # fmt: skip
def test_outpaint_returns_tokens_or_names(codes, top, left, kwargs):
    gpt = GPTS["c2i"]
    out = _valid_or_named(
        lambda: outpaint(gpt, codes, torch.tensor([1]), top=top, left=left, **kwargs),
        "outpaint",
        "inpaint",
        "place_tokens",
    )
    if out is not None:
        _check_tokens(out, gpt)


@EXAMPLES
@given(mask=st.one_of(tensors(), st.just([[0, 1]])), ds=numbers, mode=st.sampled_from(["any", "threshold", "x"]),
       threshold=numbers, grow=numbers)  # fmt: skip
def test_pixel_mask_to_tokens(mask, ds, mode, threshold, grow):
    out = _valid_or_named(
        lambda: pixel_mask_to_tokens(mask, ds, mode=mode, threshold=threshold, grow=grow), "pixel_mask_to_tokens"
    )
    if out is not None:
        assert out.dtype == torch.bool and out.dim() == 3


@EXAMPLES
@given(pixels=st.one_of(tensors(lo=-1.0, hi=1.0), tensors(shape=(1, 3, 8, 8), lo=-1.0, hi=1.0), tensors()),
       codes=tensors())  # fmt: skip
def test_vq_encode_and_decode(pixels, codes):
    out = _valid_or_named(lambda: VQ.encode(pixels), "VQModel.encode")
    if out is not None:
        assert out.dtype == torch.long and out.shape == (pixels.shape[0], pixels.shape[2] // 2, pixels.shape[3] // 2)
        assert torch.isfinite(pixels).all() and pixels.abs().max() <= 1.001
    img = _valid_or_named(lambda: VQ.decode(codes), "VQModel.decode")
    if img is not None:
        assert img.shape == (codes.shape[0], 3, codes.shape[1] * 2, codes.shape[2] * 2)


@EXAMPLES
@given(
    array=st.one_of(tensors(), tensors().map(lambda t: t.float().numpy()), tensors(shape=(2, 2, 3))),
    shape=st.one_of(st.tuples(numbers, numbers, numbers), st.just((1, 4, 4)), numbers),
    rows=numbers,
    strength=numbers,
    grid=st.one_of(st.tuples(numbers, numbers), st.just((4, 4))),
)
def test_small_helpers(array, shape, rows, strength, grid):
    x = _valid_or_named(lambda: from_uint8(array), "from_uint8")
    if x is not None:
        assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
        assert not array.dtype.is_floating_point if isinstance(array, torch.Tensor) else array.dtype.kind in "iu"
    _valid_or_named(lambda: variation_keep(shape, rows), "variation_keep")
    _valid_or_named(lambda: img2img_keep(shape, strength), "img2img_keep")
    _valid_or_named(lambda: place_tokens(array, grid), "place_tokens")


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    from gptimg_core import load_text_encoder

    folder = make_t5_folder(tmp_path_factory.mktemp("t5") / "t5", ["a", "red", "circle"], d_model=32)
    return load_text_encoder(folder, max_length=6)


@settings(max_examples=40)
@given(prompts=st.one_of(st.text(max_size=40), st.lists(st.text(max_size=20), max_size=3), numbers,
                         st.just("a \ud800"), st.just("red " * 50)))  # fmt: skip
def test_text_encoder_encode(encoder, prompts):
    out = _valid_or_named(lambda: encoder.encode(prompts), "TextEncoder.encode")
    if out is not None:
        feats, mask = out
        assert feats.shape[1:] == (6, 32) and torch.isfinite(feats).all() and mask.any(1).all()


def test_models_draw_the_same_tokens_after_the_fuzzing():
    # (pytest runs this module's tests in file order: this one last)
    for kind in GPTS:
        assert torch.equal(_seeded(kind), BEFORE[kind])
