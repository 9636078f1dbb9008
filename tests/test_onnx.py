"""ONNX export and the onnxruntime backend: the exported graphs give PyTorch's logits (fp32, within 1e-4)
and greedy tokens (CFG on and off, padded prompts, speculative decoding), inpainting keeps its tokens, the
VQ decodes within 1e-4, on the LlamaGen parity fixtures and the built-in models. Each model is exported
once per session (the exporter takes several seconds a graph)."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)")
pytest.importorskip("onnxscript", reason="the dynamo ONNX exporter needs onnxscript (pip install onnxscript)")
onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install onnx)")

from gptimg_core import CheckpointError, builtin_path, generate, inpaint, load_gpt, load_vq  # noqa: E402
from gptimg_core.cli import main  # noqa: E402
from gptimg_core.onnx_backend import OnnxGPT, OnnxVQ, is_export  # noqa: E402
from gptimg_core.onnx_export import CONFIG_NAME, export_onnx  # noqa: E402

from tiny import PARITY, caption, parity_gpt, parity_ref, parity_vq  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def parity_c2i_dir(tmp_path_factory):
    """The c2i fixture and the parity VQ, exported through the CLI."""
    out = tmp_path_factory.mktemp("onnx_parity_c2i")
    argv = ["export-onnx", "--gpt", str(PARITY / "gpt_c2i.pt"), "--vq", str(PARITY / "vq.pt"), "--out", str(out)]
    assert main([*argv, "--n-head", "4", "--grid", "4"]) == 0
    return out


@pytest.fixture(scope="session")
def parity_t2i_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx_parity_t2i")
    export_onnx(parity_gpt("t2i"), out_dir=out, with_vq=False)
    return out


@pytest.fixture(scope="session")
def builtin_t2i_dir(tmp_path_factory):
    """The built-in t2i and VQ (the defaults), in fp32 and fp16."""
    out = tmp_path_factory.mktemp("onnx_builtin_t2i")
    export_onnx(out_dir=out, dtype=["fp32", "fp16"])
    return out


@pytest.fixture(scope="session")
def builtin_c2i_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx_builtin_c2i")
    export_onnx(builtin_path("c2i"), out_dir=out, with_vq=False)
    return out


def _models(name: str, request) -> tuple:
    """(PyTorch GPT, its export on onnxruntime, a padded condition (cond, cond_mask)) for a named model."""
    folder = request.getfixturevalue(f"{name}_dir")
    if name.startswith("parity"):
        kind = name.split("_")[1]
        gpt, ref = parity_gpt(kind), parity_ref(f"gpt_{kind}")
        cond = (ref["cond"], ref.get("emb_masks"))
    else:
        kind = name.split("_")[1]
        gpt = load_gpt(builtin_path(kind))
        cond = (torch.tensor([3, 17, 40]), None) if kind == "c2i" else caption(3, [4, 16, 9], T=16, C=64)
    return gpt, load_gpt(folder), cond


def test_export_folder_records_its_graphs(builtin_t2i_dir):
    meta = json.loads((builtin_t2i_dir / CONFIG_NAME).read_text())
    assert load_gpt(builtin_t2i_dir).recommended == load_gpt(builtin_path("t2i")).recommended  # the built-in's own
    assert meta["format"] == "gptimg-onnx" and meta["opset"] == 18
    parts = [*meta["gpt"]["graphs"].values(), meta["vq"]]
    for part in parts:
        graphs = [g for name, g in part.items() if name not in ("weights", "config")]
        for g in graphs:
            path = builtin_t2i_dir / g["file"]
            assert g["bytes"] == path.stat().st_size and g["exporter"] == "dynamo"
            onnx.checker.check_model(str(path))
        weights = builtin_t2i_dir / part["weights"]["file"]
        assert part["weights"]["bytes"] == weights.stat().st_size
    files = {p.name for p in builtin_t2i_dir.iterdir()}
    assert not any(f.endswith(".data") for f in files), files  # each weight stored once, in *.weights
    # the prefill and decode graphs share their layers: less than twice the fp32 checkpoint's 12.4 MB
    assert meta["gpt"]["graphs"]["fp32"]["weights"]["bytes"] < 1.2 * builtin_path("t2i").stat().st_size
    decode = onnx.load(str(builtin_t2i_dir / meta["gpt"]["graphs"]["fp32"]["decode"]["file"]), load_external_data=False)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in decode.graph.input}
    assert dims["tokens"] == ["rows", "new"] and dims["past.0.key"] == ["rows", 6, "past", 32]
    assert is_export(builtin_t2i_dir) and meta["gpt"]["config"]["cls_token_num"] == 16


@pytest.mark.parametrize("name", ["parity_c2i", "parity_t2i", "builtin_t2i"])
def test_logits_match_pytorch_within_1e4(name, request):
    """Prefill, a 3-token feed, a 1-token feed and a rewind (what SJD does), under CFG with padding."""
    gpt, og, (cond, mask) = _models(name, request)
    c = gpt.condition(cond, mask, None, None, guided=True, where="test")
    a, b = gpt.start(c), og.start(c)
    torch.testing.assert_close(b.prefill(), a.prefill(), atol=1e-4, rtol=0)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, gpt.vocab_size, (c.rows.shape[0], 8), generator=g)
    for t, n in [(0, 3), (3, 1), (1, 4), (5, 1)]:
        ours = b.feed(tokens[:, t : t + n], t)
        assert ours.dtype == torch.float32 and ours.shape == (c.rows.shape[0], n, gpt.vocab_size)
        torch.testing.assert_close(ours, a.feed(tokens[:, t : t + n], t), atol=1e-4, rtol=0)
    a.keep_rows(c.batch), b.keep_rows(c.batch)
    torch.testing.assert_close(
        b.feed(tokens[: c.batch, 6:7], 6, last_only=True),
        a.feed(tokens[: c.batch, 6:7], 6, last_only=True),
        atol=1e-4,
        rtol=0,
    )


@pytest.mark.parametrize("scale,interval", [(1.0, -1), (4.0, -1), (2.5, 4)])
@pytest.mark.parametrize("kind", ["c2i", "t2i"])
def test_greedy_tokens_match_llamagen_parity(kind, scale, interval, request):
    """On onnxruntime the parity fixtures give LlamaGen's own greedy tokens (and PyTorch's)."""
    gpt, og, (cond, mask) = _models(f"parity_{kind}", request)
    case = {1.0: "greedy_nocfg", 4.0: "greedy_cfg4.0_interval-1", 2.5: "greedy_cfg2.5_interval4"}[scale]
    ours = generate(og, cond, cond_mask=mask, cfg_scale=scale, cfg_interval=interval, top_k=1)
    assert torch.equal(ours.view(2, -1), parity_ref(f"gpt_{kind}")[case].long())
    assert torch.equal(ours, generate(gpt, cond, cond_mask=mask, cfg_scale=scale, cfg_interval=interval, top_k=1))


@pytest.mark.parametrize("scale", [1.0, 3.0])
@pytest.mark.parametrize("name", ["builtin_t2i", "builtin_c2i"])
def test_builtin_greedy_tokens_match_pytorch(name, scale, request):
    gpt, og, (cond, mask) = _models(name, request)
    ours = generate(og, cond, cond_mask=mask, cfg_scale=scale, top_k=1)
    assert torch.equal(ours, generate(gpt, cond, cond_mask=mask, cfg_scale=scale, top_k=1))


def test_sampled_candidates_and_callbacks_match_pytorch(request):
    """Seeded sampling with candidates (best_of) draws the same tokens; the callback sees the same steps."""
    gpt, og, (cond, mask) = _models("builtin_t2i", request)
    seen = {id(gpt): [], id(og): []}
    out = []
    for m in (gpt, og):
        kw = dict(cond_mask=mask, cfg_scale=2.0, top_k=20, temperature=0.7, best_of=2, seed=5)
        out.append(generate(m, cond, **kw, callback=lambda s, total, tok, m=m: seen[id(m)].append((s, tok.clone()))))
    assert torch.equal(out[0], out[1])
    assert [s for s, _ in seen[id(gpt)]] == [s for s, _ in seen[id(og)]]
    assert all(torch.equal(x, y) for (_, x), (_, y) in zip(seen[id(gpt)], seen[id(og)], strict=True))


@pytest.mark.parametrize("name", ["parity_t2i", "builtin_c2i"])
def test_sjd_greedy_equals_ar_greedy_on_the_backend(name, request):
    _, og, (cond, mask) = _models(name, request)
    plain = generate(og, cond, cond_mask=mask, cfg_scale=3.0, top_k=1)
    assert torch.equal(generate(og, cond, cond_mask=mask, cfg_scale=3.0, top_k=1, decoding="sjd", window=5), plain)


def test_inpaint_keeps_kept_tokens_on_the_backend(request):
    gpt, og, (cond, mask) = _models("builtin_t2i", request)
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, og.vocab_size, (3, og.grid, og.grid), generator=g)
    keep = torch.ones_like(codes, dtype=torch.bool)
    keep[:, 2:5, 1:6] = False
    kw = dict(cond_mask=mask, cfg_scale=2.0, top_k=20, particles=2, seed=3)
    out = inpaint(og, codes, keep, cond, **kw)
    assert torch.equal(out[keep], codes[keep]) and not torch.equal(out, codes)
    assert torch.equal(out, inpaint(gpt, codes, keep, cond, **kw))


def test_fp16_graphs_run_close_to_fp32(builtin_t2i_dir, request):
    gpt, _, (cond, mask) = _models("builtin_t2i", request)
    half = load_gpt(builtin_t2i_dir, dtype=torch.float16)
    c = gpt.condition(cond, mask, None, None, guided=True, where="test")
    a, b = gpt.start(c), half.start(c)
    torch.testing.assert_close(b.prefill(), a.prefill(), atol=0.05, rtol=0)
    tokens = torch.randint(0, gpt.vocab_size, (c.rows.shape[0], 8), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(b.feed(tokens, 0), a.feed(tokens, 0), atol=0.05, rtol=0)


@pytest.mark.parametrize("name", ["parity", "builtin"])
def test_vq_decode_within_1e4_and_encode_equal(name, parity_c2i_dir, builtin_t2i_dir):
    folder, vq = (parity_c2i_dir, parity_vq()) if name == "parity" else (builtin_t2i_dir, load_vq(builtin_path("vq")))
    ovq = load_vq(folder)
    assert isinstance(ovq, OnnxVQ) and (ovq.downsample, ovq.codebook_size) == (vq.downsample, vq.codebook_size)
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, vq.codebook_size, (3, 4, 5), generator=g)  # any grid, not only the model's
    torch.testing.assert_close(ovq.decode(codes), vq.decode(codes), atol=1e-4, rtol=0)
    pixels = vq.decode(torch.randint(0, vq.codebook_size, (2, 4, 4), generator=g)).clamp(-1, 1)
    assert torch.equal(ovq.encode(pixels), vq.encode(pixels))
    if name == "parity":
        ref = parity_ref("vq")
        torch.testing.assert_close(ovq.decode(ref["codes"]), ref["decoded"], atol=1e-4, rtol=0)
        assert torch.equal(ovq.encode(ref["image"]), ref["indices"])


def test_cli_generates_from_an_export_folder(builtin_t2i_dir, tmp_path, capsys):
    out = tmp_path / "x.png"
    argv = ["generate", "--gpt", str(builtin_t2i_dir), "--prompt", "a red circle", "--seed", "1", "--out", str(out)]
    assert main([*argv, "--cfg", "2", "--top-k", "1"]) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out


def test_loading_errors_name_the_fix(tmp_path, parity_t2i_dir):
    with pytest.raises(ValueError, match="load_gpt: .*has no config.json.*or an ONNX export folder.*export-onnx"):
        load_gpt(tmp_path)  # neither a Janus folder nor an export: both named
    with pytest.raises(CheckpointError, match="without gptimg_onnx.json, so not an ONNX export.*export-onnx"):
        OnnxGPT(tmp_path)
    with pytest.raises(ValueError, match=r"holds the GPT in \['fp32'\], not fp16; export it with --dtype fp16"):
        load_gpt(parity_t2i_dir, dtype=torch.float16)
    with pytest.raises(CheckpointError, match="holds no VQ"):
        load_vq(parity_t2i_dir)
    with pytest.raises(ValueError, match="export_onnx: dtype must be one or more of"):
        export_onnx(out_dir=tmp_path, dtype="int8")
    with pytest.raises(ValueError, match="the VQ has 256 codes but the GPT's vocabulary is 1024"):
        export_onnx(out_dir=tmp_path, vq=parity_vq())


def test_the_backend_is_a_token_model(parity_c2i_dir):
    from gptimg_core.token_model import DecodeState, TokenModel

    og = load_gpt(parity_c2i_dir)
    assert isinstance(og, OnnxGPT) and isinstance(og, TokenModel)
    assert og.recommended == parity_gpt("c2i").recommended  # LlamaGen's settings for a LlamaGen checkpoint
    assert og.sampling_bytes(4) > parity_gpt("c2i").sampling_bytes(4)  # the cache counted twice (past, present)
    state = og.start(og.condition(torch.tensor([1]), None, None, None, guided=False, where="test"))
    assert isinstance(state, DecodeState)
    with pytest.raises(ValueError, match="OnnxState.feed: t=0, but the cache holds image positions up to none"):
        state.feed(torch.zeros(1, 1, dtype=torch.long), 0)
    assert np.isfinite(state.prefill().numpy()).all()


def test_torchscript_fallback_is_recorded_and_runs(tmp_path, monkeypatch, caplog):
    """A graph the dynamo exporter cannot export goes through the TorchScript exporter, logged and recorded."""
    from tiny import tiny_gpt

    real = torch.onnx.export

    def no_dynamo(*args, dynamo=True, **kw):
        if dynamo:
            raise RuntimeError("dynamo cannot export this")
        return real(*args, dynamo=False, **kw)

    monkeypatch.setattr(torch.onnx, "export", no_dynamo)
    gpt = tiny_gpt("t2i")
    meta = json.loads(export_onnx(gpt, out_dir=tmp_path, with_vq=False).read_text())
    graphs = meta["gpt"]["graphs"]["fp32"]
    assert (graphs["prefill"]["exporter"], graphs["decode"]["exporter"]) == ("torchscript", "torchscript")
    assert "dynamo exporter failed on gpt_decode_fp32.onnx (dynamo cannot export this)" in caplog.text
    feats, mask = caption(3, [2, 5, 6])
    kw = dict(cond_mask=mask, cfg_scale=3.0, top_k=1)
    plain = generate(gpt, feats, **kw)
    og = load_gpt(tmp_path)
    assert torch.equal(generate(og, feats, **kw), plain)
    assert torch.equal(generate(og, feats, **kw, decoding="sjd", window=4), plain)


def test_importing_core_imports_no_onnx_package():
    """onnx, onnxscript and onnxruntime are test requirements only: the core imports them when used."""
    import subprocess
    import sys

    code = (
        "import sys, gptimg_core, gptimg_core.cli, gptimg_core.checkpoint; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('onnx', 'onnxruntime', 'onnxscript')]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
