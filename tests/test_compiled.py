"""Compiled decode steps (compiled.py): the same tokens as eager, only where asked, clear errors otherwise."""

import pytest
import torch

from gptimg_core import compiled, cpu_linear, generate, inpaint, load_gpt
from gptimg_core.checkpoint import save_model

from tiny import caption, tiny_gpt

needs_compiler = pytest.mark.skipif(not compiled.can_compile(), reason="torch.compile needs a C++ compiler on CPU")


def _pair(kind: str, **kw):
    eager, fast = tiny_gpt(kind, **kw), tiny_gpt(kind, **kw)
    compiled.enable(fast, "test")
    return eager, fast


@pytest.mark.slow  # compiles: tens of seconds from an empty cache
@needs_compiler
@pytest.mark.parametrize("kind", ["c2i", "t2i"])
def test_compiled_steps_draw_the_tokens_eager_steps_draw(kind):
    eager, fast = _pair(kind)
    if kind == "c2i":
        cond, extra = torch.tensor([1, 7]), {}
    else:  # a padded caption: the steps take an attention mask
        cond, mask = caption(2, [6, 3])
        extra = {"cond_mask": mask}
    for kw in ({"top_k": 1}, {"decoding": "sjd"}, {"cfg_scale": 1.0}, {"cfg_interval": 5}):
        runs = [generate(m, cond, generator=torch.Generator().manual_seed(3), **extra, **kw) for m in (eager, fast)]
        assert torch.equal(*runs), kw
    codes = generate(eager, cond, generator=torch.Generator().manual_seed(4), **extra)
    keep = torch.ones_like(codes, dtype=torch.bool)
    keep[:, 1:3, 1:3] = False  # runs of kept tokens go through as multi-token passes
    for decoding in ("ar", "sjd"):
        runs = [
            inpaint(m, codes, keep, cond, seed=5, decoding=decoding, **extra) for m in (eager, fast)
        ]  # fmt: skip
        assert torch.equal(*runs) and torch.equal(runs[0][keep], codes[keep]), decoding
    assert compiled._STEPS.get(fast) is not None and compiled._STEPS.get(eager) is None


@pytest.mark.slow  # compiles: tens of seconds from an empty cache
@needs_compiler
def test_compiled_passes_give_eager_logits_and_only_the_compiled_model_and_no_prefill_takes_them():
    eager, fast = _pair("c2i")
    seen = []  # token counts of the passes that went through the compiled forward
    real = compiled.decode_step

    def spy(gpt):
        step = real(gpt)

        def counted(tokens, *args, **kwargs):
            seen.append(tokens.shape[1])
            return step(tokens, *args, **kwargs)

        return counted

    try:
        compiled.decode_step = spy
        states = [
            m.start(m.condition(torch.tensor([2]), None, None, None, guided=False, where="test")) for m in (eager, fast)
        ]
        first = [s.prefill() for s in states]  # the prompt's pass stays eager: it runs once per generation
        one = [s.feed(torch.tensor([[5]]), 0) for s in states]
        many = [s.feed(torch.tensor([[1, 2, 3]]), 1) for s in states]  # a verify window
    finally:
        compiled.decode_step = real
    for e, c in (first, one, many):
        torch.testing.assert_close(c, e, atol=1e-5, rtol=1e-5)
    assert seen == [1, 3]  # the compiled model's two feeds, nothing else


@pytest.mark.slow  # compiles: tens of seconds from an empty cache
@needs_compiler
def test_load_gpt_compiles_on_request(tmp_path):
    path = tmp_path / "g.safetensors"
    save_model(tiny_gpt("c2i"), path)
    assert load_gpt(path, compile=True).compile_steps
    plain = load_gpt(path)
    assert not plain.compile_steps and "compiled" not in plain.describe()
    assert "decode steps compiled" in load_gpt(path, compile=True).describe()


def test_compile_without_a_compiler_is_refused_by_name(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    gpt = tiny_gpt("c2i")
    with pytest.raises(ValueError, match=r"load_gpt: compile needs a C\+\+ compiler .*leave compile off"):
        compiled.enable(gpt, "load_gpt")
    assert not gpt.compile_steps


def test_compile_of_a_folder_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"load_gpt: compile is for LlamaGen-format GPT files; .* is a folder"):
        load_gpt(tmp_path, compile=True)


@pytest.mark.slow  # compiles: tens of seconds from an empty cache
@needs_compiler
@pytest.mark.skipif(not cpu_linear._has_onednn_linear(), reason="this torch has no oneDNN linear")
def test_compiled_steps_keep_onednn_for_many_rows(monkeypatch):
    # Batch 3 with guidance is 6 rows a step: oneDNN's product, opaque to the compiler, as in eager steps.
    monkeypatch.setattr(cpu_linear, "STREAM_ROWS", range(0))
    monkeypatch.setattr(cpu_linear, "ONEDNN_ROWS", range(5, 1 << 20))
    monkeypatch.setattr(cpu_linear, "ONEDNN_MIN_WEIGHT", 0)
    torch._dynamo.reset()
    eager, fast = _pair("c2i")
    eager_tokens = generate(eager, torch.tensor([1, 4, 9]), generator=torch.Generator().manual_seed(1))
    with torch.profiler.profile() as prof:
        fast_tokens = generate(fast, torch.tensor([1, 4, 9]), generator=torch.Generator().manual_seed(1))
    assert torch.equal(eager_tokens, fast_tokens)
    ops = {e.key for e in prof.key_averages()}
    assert "gptimg::onednn_linear" in ops and any(k.startswith("Torch-Compiled Region") for k in ops)
