"""The evaluation command (`python -m gptimg_core.eval`): its options and its report."""

import copy
import json

import numpy as np
import pytest
import torch

from gptimg_core.builtin import BUILTIN_SAMPLING
from gptimg_core.eval import DEV_SETS, EVAL_SAMPLING, Tally, load_builtin, main, parse_sampling


def test_sampling_overrides_change_one_setting_of_a_copy():
    before = copy.deepcopy(BUILTIN_SAMPLING)
    out = parse_sampling(["t2i.cfg_scale=3", "c2i.top_k=8"], BUILTIN_SAMPLING)
    assert out["t2i"]["cfg_scale"] == 3.0 and out["c2i"]["top_k"] == 8 and isinstance(out["c2i"]["top_k"], int)
    assert out["t2i"]["temperature"] == BUILTIN_SAMPLING["t2i"]["temperature"]
    assert BUILTIN_SAMPLING == before  # the defaults are untouched
    inpaint = parse_sampling(["inpaint.temperature=0.7"], EVAL_SAMPLING)["inpaint"]
    assert inpaint["temperature"] == 0.7 and EVAL_SAMPLING["inpaint"]["temperature"] == 1.0


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("t2i.cfgscale=3", r"expected MODEL.SETTING=VALUE .*'cfg_scale'.*got 't2i.cfgscale=3'"),
        ("cfg_scale=3", r"MODEL one of \['c2i', 't2i'\]"),
        ("t2i.top_k=many", r"t2i.top_k takes a number, got 'many'"),
    ],
)
def test_bad_sampling_overrides_name_what_is_expected(item, message):
    with pytest.raises(ValueError, match=message):
        parse_sampling([item], BUILTIN_SAMPLING)


def test_rates_carry_their_95_percent_wilson_interval():
    t = Tally()
    for key, right, n in (("none", 0, 10), ("all", 10, 10), ("small", 53, 60), ("large", 530, 600)):
        for i in range(n):
            t.add(key, i < right)
    r = t.rates()
    assert (r["none"]["low"], r["none"]["high"]) == (0.0, 0.278)  # the textbook 0 of 10: 0 to 27.8%
    assert (r["all"]["low"], r["all"]["high"]) == (0.722, 1.0)
    assert r["small"]["low"] < r["small"]["rate"] < r["small"]["high"]
    assert r["large"]["high"] - r["large"]["low"] < (r["small"]["high"] - r["small"]["low"]) / 2  # 10x n: ~3x narrower


def test_dev_sets_do_not_reuse_the_evaluation_seeds():
    dev_seeds = {seed for runs in DEV_SETS.values() for _, seed in runs}
    assert not dev_seeds & set(range(1234, 1234 + len(DEV_SETS)))


@pytest.mark.slow
def test_eval_writes_its_rates_and_the_sampling_it_used(tmp_path):
    out = tmp_path / "rates.json"
    assert main(["--n", "16", "--sampling", "t2i.top_k=5", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["sampling"]["t2i"]["top_k"] == 5
    assert report["sampling"]["inpaint"] == EVAL_SAMPLING["inpaint"]  # inpainting has settings of its own
    assert report["sets"]["text"] == [[16, 1234]]
    assert (report["device"], report["dtype"]) == ("cpu", "fp32")
    assert torch.is_grad_enabled()  # the caller's grad mode is back (training later in the process needs it)
    rates = report["rates"]
    assert all(v["low"] <= v["rate"] <= v["high"] for v in rates.values())
    assert rates["inpaint: tokens outside the mask unchanged"]["rate"] == 1.0
    assert rates["class: colour+shape"]["n"] == 48
    pairs = rates["two objects: both right"]["n"]
    assert rates["two objects: each object found"]["n"] == 2 * pairs  # each pair prompt asks for two objects
    assert rates["two objects: exactly two drawn"]["n"] == pairs


def test_eval_loads_the_gpts_and_t5_in_the_asked_dtype_and_generates_with_them():
    m = load_builtin(dtype=torch.bfloat16)
    dtypes = {m.t2i.tok_embeddings.weight.dtype, m.c2i.tok_embeddings.weight.dtype, m.te.dtype}
    assert dtypes == {torch.bfloat16}
    assert next(m.vq.parameters()).dtype == torch.float32  # decoded in fp32, as the nodes do
    with torch.no_grad():
        images = m.text(
            ["a red circle on a blue background", "a small green star in the top left on a white background"], 0
        )
    assert images.shape == (2, 64, 64, 3) and images.dtype == np.uint8


def test_eval_rejects_an_unknown_dtype(capsys):
    with pytest.raises(SystemExit):
        main(["--n", "16", "--dtype", "fp8"])
    assert "--dtype: invalid choice: 'fp8'" in capsys.readouterr().err
