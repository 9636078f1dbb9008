"""Progress bar with live previews, the sampling-stats websocket event, and interrupts honoured at every token."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from gptimg_core import to_uint8
from gptimg_core.preview import preview_cell, render_decoded, tile

SETTINGS = dict(seed=11, cfg=4.0, cfg_interval=-1, cfg_schedule="constant", temperature=1.0, top_k=0, top_p=1.0)


@pytest.fixture(scope="module")
def cond(comfy, loaded):
    (c,), _ = comfy.run(
        "GPTImgEncodePrompt", text_encoder=loaded["te"], model=loaded["t2i"], prompt="a red circle on a blue background"
    )
    return c


def sampler(comfy, loaded, cond, vq=True, batch_size=1, unique_id="7"):
    extra = {"vq": loaded["vq"]} if vq else {}
    (tokens,), _ = comfy.run(
        "GPTImgSampler", unique_id, model=loaded["t2i"], positive=cond, batch_size=batch_size, **extra, **SETTINGS
    )
    return tokens


def test_progress_bar_gets_live_previews(comfy, loaded, cond, progress):
    sampler(comfy, loaded, cond, batch_size=3)
    assert progress.updates[-1][:2] == (64, 64)
    values = [v for v, _, _ in progress.updates]
    assert values == sorted(values) and all(t == 64 for _, t, _ in progress.updates)
    previews = progress.previews()
    assert previews  # up to one per token row of the 8-row grid, as the 10% budget allows
    fmt, image, size = previews[0]
    assert fmt == "JPEG" and isinstance(image, Image.Image) and size == comfy.server.args.preview_size
    assert image.mode == "RGB" and image.width >= 256  # 3 images tiled, crisp 32 px cells


def finished_image(vq, codes: torch.Tensor, batch: int) -> np.ndarray:
    """What the last preview must show: the VQ decode of the returned tokens, tiled and scaled as previews are."""
    g = codes.shape[-1]
    cell = preview_cell((g, g), vq.downsample, batch)
    return tile(render_decoded(vq.vq, vq.preview, codes.reshape(batch, -1), (g, g), cell))


@pytest.mark.parametrize("batch_size", [1, 3])
def test_the_last_preview_is_the_finished_image(comfy, loaded, cond, progress, batch_size):
    tokens = sampler(comfy, loaded, cond, batch_size=batch_size)
    value, total, last = progress.updates[-1]
    assert (value, total) == (64, 64) and last is not None, progress.updates[-3:]
    expected = finished_image(loaded["vq"], tokens.codes, batch_size)
    assert np.array_equal(np.asarray(last[1]), expected), "the last preview is not the finished image"
    if batch_size == 1:  # the finished image itself, decoded (not palette colours, no grey rows), scaled up
        step = expected.shape[0] // 64
        assert np.array_equal(expected[::step, ::step], to_uint8(loaded["vq"].vq.decode(tokens.codes))[0])


def test_no_vq_no_previews(comfy, loaded, cond, progress):
    sampler(comfy, loaded, cond, vq=False)
    assert progress.updates and not progress.previews() and progress.updates[-1][:2] == (64, 64)


def test_preview_time_is_logged_and_within_budget(comfy, loaded, cond, progress, caplog):
    with caplog.at_level(logging.DEBUG):
        sampler(comfy, loaded, cond, batch_size=2)
    (record,) = [r for r in caplog.records if r.getMessage().startswith("gptimg previews:")]
    stats = record.gptimg_previews
    assert stats["palette_previews"] + stats["decode_previews"] >= 1
    assert stats["ratio"] <= 0.1 or stats["overruns"] > 0, stats  # within budget unless a preview overran


def test_sampling_stats_event(comfy, loaded, cond, recorder, progress):
    sampler(comfy, loaded, cond, unique_id="42")
    events = recorder.named("gptimg.sampling_stats")
    assert events and events[-1]["finished"] is True and events[-1]["done"] == events[-1]["total"] == 64
    for e in events:
        assert set(e) == {"node", "done", "total", "tokens_per_s", "eta_s", "finished", "settings"}
        assert e["settings"].startswith("cfg ")  # the values the run used, in words
        assert e["node"] == "42" and isinstance(e["done"], int) and isinstance(e["tokens_per_s"], float)
        assert e["eta_s"] >= 0
    editing = recorder.events.clear()
    tokens = sampler(comfy, loaded, cond)
    comfy.run("GPTImgImg2Img", "9", model=loaded["t2i"], tokens=tokens, positive=cond, strength=0.5, **_edit())
    editing = recorder.named("gptimg.sampling_stats")
    assert editing[-1]["node"] == "9" and editing[-1]["finished"] is True


def _edit() -> dict:
    return {k: SETTINGS[k] for k in ("seed", "cfg", "temperature", "top_k", "top_p")}


def test_interrupt_stops_at_the_next_token_and_the_model_is_reusable(comfy, loaded, cond, progress, recorder):
    expected = sampler(comfy, loaded, cond, vq=False)
    recorder.events.clear()
    seen = []

    def interrupt_once(value: int, total: int) -> None:
        if not seen:
            seen.append(value)
            comfy.mm.interrupt_current_processing(True)  # what POST /interrupt does

    progress.on_update = interrupt_once
    with pytest.raises(comfy.mm.InterruptProcessingException):
        sampler(comfy, loaded, cond, vq=False)
    last = recorder.named("gptimg.sampling_stats")[-1]
    assert last["finished"] is True and last["done"] == seen[0]  # the very next token's callback raised
    assert not comfy.mm.processing_interrupted()
    progress.on_update = None
    assert torch.equal(sampler(comfy, loaded, cond, vq=False).codes, expected.codes)


def test_interrupt_while_inpainting(comfy, loaded, cond, progress):
    tokens = sampler(comfy, loaded, cond)
    progress.on_update = lambda value, total: comfy.mm.interrupt_current_processing(True)
    with pytest.raises(comfy.mm.InterruptProcessingException):
        comfy.run(
            "GPTImgTokenInpaint", model=loaded["t2i"], tokens=tokens, mask=torch.ones(1, 64, 64), positive=cond,
            mask_mode="any", threshold=0.5, grow=0, candidates=2, passes=2, **_edit(),
        )  # fmt: skip


@pytest.mark.parametrize(("candidates", "passes"), [(1, 1), (2, 2)])
def test_inpainting_with_a_vq_shows_previews_ending_on_the_finished_image(
    comfy, loaded, cond, progress, candidates, passes
):
    tokens = sampler(comfy, loaded, cond, vq=False)
    progress.updates.clear()
    mask = torch.zeros(1, 64, 64)
    mask[:, 16:48, 16:48] = 1.0
    (edited,), _ = comfy.run(
        "GPTImgTokenInpaint", model=loaded["t2i"], tokens=tokens, mask=mask, positive=cond, vq=loaded["vq"],
        mask_mode="any", threshold=0.5, grow=0, candidates=candidates, passes=passes, **_edit(),
    )  # fmt: skip
    value, total, last = progress.updates[-1]
    assert value == total and last is not None, progress.updates[-3:]
    assert np.array_equal(np.asarray(last[1]), finished_image(loaded["vq"], edited.codes, 1))


def test_img2img_with_a_vq_ends_on_the_finished_image(comfy, loaded, cond, progress):
    tokens = sampler(comfy, loaded, cond, vq=False)
    progress.updates.clear()
    (out,), _ = comfy.run(
        "GPTImgImg2Img",
        "9",
        model=loaded["t2i"],
        tokens=tokens,
        positive=cond,
        vq=loaded["vq"],
        strength=0.5,
        **_edit(),
    )
    value, total, last = progress.updates[-1]
    assert value == total and last is not None
    assert np.array_equal(np.asarray(last[1]), finished_image(loaded["vq"], out.codes, 1))
