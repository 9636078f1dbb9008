"""The sampler while it runs: websocket progress, stats and previews; interrupts; the queue afterwards."""

from __future__ import annotations

import time

import pytest

from tests.comfy.server import ComfyClient
from tests.integration import graphs

pytestmark = pytest.mark.comfy

STATS = "gptimg.sampling_stats"
INTERRUPT_LATENCY_S = 5.0  # the sampler checks for interrupts at every token


def test_sampler_reports_progress_stats_and_previews(gptimg_server: ComfyClient) -> None:
    with gptimg_server.events() as events:
        prompt_id = gptimg_server.post_prompt(graphs.t2i(seed=11, batch_size=4))
        events.wait_for(lambda m: m["type"] == "execution_success" and m["data"]["prompt_id"] == prompt_id, 120)
    stats = [d for d in events.of_type(STATS) if d["node"] == "5"]
    assert stats, f"no {STATS} events for the sampler (node 5)"
    assert set(stats[0]) == {"node", "done", "total", "tokens_per_s", "eta_s", "finished", "settings"}
    assert stats[0]["settings"].startswith("cfg ")  # the values the run used, shown under the node
    assert all(d["total"] == 64 for d in stats)  # the built-in model draws 8x8 tokens
    done = [d["done"] for d in stats]
    assert done == sorted(done) and 0 < done[0] <= 64
    *running, last = stats
    assert not any(d["finished"] for d in running)
    assert last["finished"] and last["done"] == 64 and last["eta_s"] == 0
    assert all(d["tokens_per_s"] > 0 and d["eta_s"] >= 0 for d in stats)
    progress = [d for d in events.of_type("progress") if d.get("node") == "5"]
    assert progress and progress[-1]["value"] == progress[-1]["max"] == 64
    assert events.binary_frames > 0, "no live previews (the sampler has a VQ connected)"


def test_interrupt_stops_the_sampler_and_the_next_prompt_runs(gptimg_server: ComfyClient) -> None:
    # 64 images of a 16x16 grid (the built-in model extended with the loader's grid override):
    # many seconds of sampling, so the interrupt surely lands inside the sampler.
    slow = graphs.t2i(seed=21, batch_size=64, grid=16)
    with gptimg_server.events() as events:
        prompt_id = gptimg_server.post_prompt(slow)
        events.wait_for(lambda m: m["type"] == STATS and m["data"]["node"] == "5" and not m["data"]["finished"], 120)
        t0 = time.monotonic()
        gptimg_server.interrupt(prompt_id)
        entry = gptimg_server.wait(prompt_id, timeout=60, check=False)
        latency = time.monotonic() - t0
        events.wait_for(lambda m: m["type"] == STATS and m["data"]["finished"], 10)
    assert entry["status"]["status_str"] == "error"
    (interrupted,) = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_interrupted"]
    assert interrupted["node_id"] == "5" and interrupted["node_type"] == "GPTImgSampler"
    assert not [m for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert latency < INTERRUPT_LATENCY_S, f"the sampler took {latency:.1f} s to stop"
    last = [d for d in events.of_type(STATS) if d["node"] == "5"][-1]
    assert last["finished"] and last["done"] < last["total"] == 256, last

    entry = gptimg_server.wait(gptimg_server.post_prompt(graphs.t2i(seed=22)), timeout=120)
    (img,) = entry["outputs"]["7"]["images"]
    assert gptimg_server.view(img["filename"], img["subfolder"], img["type"]).size == (64, 64)
