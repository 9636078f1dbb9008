"""cpu_linear.project: the CPU layout choice for few-row products (decode steps); the project's registry metadata."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gptimg_core import cpu_linear
from gptimg_core.cpu_linear import STREAM_ROWS_BY_VENDOR, cpu_vendor, project

CPUINFO = "processor\t: 0\nvendor_id\t: {}\ncpu family\t: 6\nmodel name\t: Some CPU\n\nprocessor\t: 1\n"


def test_cpu_vendor_reads_the_vendor_id_line():
    assert cpu_vendor(CPUINFO.format("AuthenticAMD")) == "AuthenticAMD"
    assert cpu_vendor(CPUINFO.format("GenuineIntel")) == "GenuineIntel"
    assert cpu_vendor("processor\t: 0\nCPU implementer\t: 0x41\n") == ""  # e.g. ARM: no vendor_id line
    assert STREAM_ROWS_BY_VENDOR.get(cpu_vendor("")) is None  # an unknown vendor gets F.linear only


ONEDNN = range(5, 1 << 20) if cpu_linear._has_onednn_linear() else range(0)


@pytest.mark.parametrize("rows", [1, 2, 3, 5, 8, 16, 17, 40])
@pytest.mark.parametrize(
    ("stream", "onednn"),
    [(range(0), range(0)), (range(1, 17), range(0)), (range(8, 17), range(0)), (range(1, 5), ONEDNN)],
)
def test_project_equals_linear_in_every_layout(monkeypatch, rows, stream, onednn):
    monkeypatch.setattr(cpu_linear, "STREAM_ROWS", stream)
    monkeypatch.setattr(cpu_linear, "ONEDNN_ROWS", onednn)
    monkeypatch.setattr(cpu_linear, "ONEDNN_MIN_WEIGHT", 0)  # the test's small weight takes the oneDNN path too
    g = torch.Generator().manual_seed(rows)
    x, w = torch.randn(rows, 1, 48, generator=g), torch.randn(96, 48, generator=g)
    with torch.no_grad():
        out = project(x, w)
    assert out.shape == (rows, 1, 96) and out.is_contiguous()
    torch.testing.assert_close(out, F.linear(x, w), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stream", [range(0), range(1, 17)])
def test_project_output_is_contiguous_and_takes_transposed_input(monkeypatch, stream):
    # A transposed output fed to the next product made MKL read that weight 6x slower (docs/performance.md).
    monkeypatch.setattr(cpu_linear, "STREAM_ROWS", stream)
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(48, 2, generator=g).T, torch.randn(96, 48, generator=g)  # x (2, 48), strides (1, 2)
    out = project(x, w)
    assert out.is_contiguous()
    torch.testing.assert_close(out, F.linear(x, w), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rows", [1, 2, 5, 9])
def test_project_trains_in_the_streaming_layout(monkeypatch, rows):
    # Outside no_grad the output must stay on autograd's tape (numpy's transpose and oneDNN are inference only).
    monkeypatch.setattr(cpu_linear, "STREAM_ROWS", range(1, 5))
    monkeypatch.setattr(cpu_linear, "ONEDNN_ROWS", ONEDNN)
    monkeypatch.setattr(cpu_linear, "ONEDNN_MIN_WEIGHT", 0)
    g = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, 48, generator=g)
    w = torch.randn(96, 48, generator=g, requires_grad=True)
    w_ref = w.detach().clone().requires_grad_()
    project(x, w).square().sum().backward()
    F.linear(x, w_ref).square().sum().backward()
    torch.testing.assert_close(w.grad, w_ref.grad, atol=1e-4, rtol=1e-5)


@pytest.mark.skipif(not ONEDNN, reason="this torch has no oneDNN linear")
def test_project_picks_onednn_for_large_weights_and_many_rows(monkeypatch):
    from torch.profiler import profile

    monkeypatch.setattr(cpu_linear, "STREAM_ROWS", range(1, 5))
    monkeypatch.setattr(cpu_linear, "ONEDNN_ROWS", ONEDNN)

    def ops(rows: int, out: int) -> set[str]:
        x, w = torch.randn(rows, 256), torch.randn(out, 256)
        with torch.no_grad(), profile() as p:
            project(x, w)
        return {e.key for e in p.key_averages()}

    assert "mkldnn::_linear_pointwise" in ops(8, 1024)  # 256K weights
    assert "mkldnn::_linear_pointwise" not in ops(8, 64)  # below ONEDNN_MIN_WEIGHT: F.linear
    assert "mkldnn::_linear_pointwise" not in ops(2, 1024)  # few rows: W @ x.T
    assert "aten::mm" in ops(2, 1024)


def test_rope_rounds_as_llamagen():
    # LlamaGen's stacked formula written out op by op: the one-pass rotation must equal it bit for bit.
    from gptimg_core.gpt import apply_rope

    g = torch.Generator().manual_seed(0)
    x, rope = torch.randn(2, 5, 3, 16, generator=g) * 3, torch.randn(5, 8, 2, generator=g)
    xs, r = x.reshape(2, 5, 3, 8, 2), rope.view(1, 5, 1, 8, 2)
    even = xs[..., 0] * r[..., 0] - xs[..., 1] * r[..., 1]
    odd = xs[..., 1] * r[..., 0] + xs[..., 0] * r[..., 1]
    assert torch.equal(apply_rope(x, rope), torch.stack([even, odd], -1).flatten(3))


@pytest.mark.parametrize("stream", [range(1, 17), range(8, 17)])
def test_project_compiles_with_dynamic_row_counts(monkeypatch, stream):
    # Training compiles the GPT with dynamic shapes; the row count is then symbolic (CI on AMD failed here).
    from gptimg_core.compiled import can_compile

    if not can_compile():
        pytest.skip("torch.compile needs a C++ compiler on CPU")
    monkeypatch.setattr(cpu_linear, "STREAM_ROWS", stream)
    torch._dynamo.reset()
    compiled = torch.compile(project, dynamic=True, fullgraph=True)
    w = torch.randn(96, 48)
    for rows in (2, 9, 40):
        x = torch.randn(rows, 1, 48)
        torch.testing.assert_close(compiled(x, w), F.linear(x, w), atol=1e-5, rtol=1e-5)


# ---- the repository as a Comfy Registry package -------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_registry_icon_is_a_small_png_in_the_repo():
    icon = _pyproject()["tool"]["comfy"]["Icon"]
    prefix = "https://raw.githubusercontent.com/gptimg/gptimg/main/"
    assert icon.startswith(prefix), icon
    path = REPO / icon.removeprefix(prefix)
    assert path.is_file(), f"[tool.comfy] Icon names {path}, which is not in the repository"
    assert path.stat().st_size < 20_000
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width == im.height <= 400  # the registry shows a square up to 400 px


def test_registry_security_lint_rules_are_selected():
    selected = _pyproject()["tool"]["ruff"]["lint"]["select"]
    assert {"S102", "S307", "E702"} <= set(selected)  # exec, eval, `;`: what the registry scans for


def test_publish_workflow_uses_the_registry_action():
    text = (REPO / ".github" / "workflows" / "publish.yml").read_text()
    assert "uses: Comfy-Org/publish-node-action@" in text and "secrets.REGISTRY_ACCESS_TOKEN" in text
    assert '- "pyproject.toml"' in text  # publishes when the version in pyproject.toml changes
