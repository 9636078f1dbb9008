"""Fitting the recipe into a wall-clock budget (gptimg_core/train/budget.py, `train --minutes`)."""

import time

import pytest

from gptimg_core.builtin import builtin_path
from gptimg_core.train.__main__ import T2I_RECIPE, plan_budget, run_recipe
from gptimg_core.train.__main__ import main as train_main
from gptimg_core.train.budget import RESERVE, Budget, StageCost, StepClock, stage_costs


class Clock:
    """A clock the test moves by hand: what the budget reads as now."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_step_clock_leaves_out_the_first_steps():
    clock = StepClock(skip=2)
    time.sleep(0.2)  # a slow first step (compiling)
    clock.tick()
    clock.tick()
    for _ in range(3):
        time.sleep(0.02)
        clock.tick()
    assert 0.015 < clock.mean() < 0.06


def test_stage_costs_split_a_pilot_into_fixed_and_scaled_seconds():
    pilot = {
        "stage_seconds": {"vq": 30.0, "tokens": 4.0, "t2i": 50.0},
        "recipes": {"vq": {"steps": 100}, "t2i": {"steps": 40}},
        "vq": {"step_seconds": 0.2},
        "t2i": {"step_seconds": 0.5},
        "tokens": {"scenes": 800},
    }
    costs = stage_costs(pilot, {"vq": 20_000, "t2i": 8_000}, full_scenes=160_000)
    assert costs["vq"] == StageCost(10.0, 4_000.0)  # 30 s = 10 s of evaluation + 100 steps of 0.2 s
    assert costs["t2i"] == StageCost(30.0, 4_000.0)  # 20 s of compiling and saving
    assert costs["tokens"] == StageCost(0.0, 800.0)  # 5 ms a scene
    assert costs["t2i"].at(0.5) == 2_030.0


def test_budget_runs_the_recipe_as_written_when_it_fits():
    costs = {"a": StageCost(10, 100), "b": StageCost(10, 200)}
    clock = Clock()
    budget = Budget(costs, seconds=1_000, clock=clock)
    assert budget.scale("a") == 1.0
    clock.now = 110
    budget.finished("a", 110)
    assert budget.scale("b") == 1.0


def test_budget_shrinks_every_stage_by_one_scale_to_fit():
    costs = {"a": StageCost(10, 1_000), "b": StageCost(20, 2_000)}
    clock = Clock()
    budget = Budget(costs, seconds=1_000, clock=clock)
    s = budget.scale("a")
    assert s == pytest.approx((1_000 * (1 - RESERVE) - 30) / 3_000)
    clock.now = costs["a"].at(s)  # stage a took what was estimated
    budget.finished("a", clock.now)
    assert budget.scale("b") == pytest.approx(s)
    assert clock.now + costs["b"].at(s) == pytest.approx(1_000 * (1 - RESERVE))


def test_budget_shrinks_the_later_stages_when_a_stage_ran_slow():
    costs = {"a": StageCost(0, 1_000), "b": StageCost(0, 1_000)}
    clock = Clock()
    budget = Budget(costs, seconds=1_000, clock=clock)
    s = budget.scale("a")
    clock.now = 1.5 * costs["a"].at(s)  # the machine got 1.5x slower
    budget.finished("a", clock.now)
    later = budget.scale("b")
    assert later < 0.75 * s
    assert clock.now + 1.5 * costs["b"].at(later) == pytest.approx(1_000 * (1 - RESERVE))


def test_budget_runs_a_late_stage_at_its_smallest_scale_and_says_it_overruns(caplog):
    costs = {"a": StageCost(0, 1_000), "b": StageCost(0, 1_000)}
    clock = Clock()
    budget = Budget(costs, seconds=1_000, clock=clock)
    budget.scale("a")
    clock.now = 990.0  # stage a took nearly all of it
    budget.finished("a", clock.now)
    assert budget.scale("b") == budget.floor == 0.1
    assert "b needs more time than is left" in caplog.text


def test_budget_reports_its_minutes_scales_and_time_so_far():
    clock = Clock()
    clock.now = 50.0
    budget = Budget({"a": StageCost(0, 100)}, seconds=600, start=20.0, clock=clock)
    budget.scale("a")
    clock.now = 170.0
    assert budget.report() == {"minutes": 10.0, "scales": {"a": 1.0}, "total_seconds": 150.0}


def test_budget_never_scales_past_the_cap():
    budget = Budget({"a": StageCost(0, 10)}, seconds=1_000, cap=0.3, clock=Clock())
    assert budget.scale("a") == 0.3


def test_budget_too_small_for_the_recipe_says_so():
    with pytest.raises(ValueError, match=r"train --minutes: 1.0 minutes are too few.*--minutes 0"):
        Budget({"a": StageCost(100, 10_000)}, seconds=60, clock=Clock())


@pytest.mark.slow
def test_recipe_in_a_budget_shrinks_its_steps_and_keeps_to_its_minutes(tmp_path):
    """The pilot and the planned run, from the shipped VQ, eager, at most scale 0.02 (stages 2-4 about 70 s
    on a fast day here, 3.5x that on a slow one). The budget, counted from before the pilot, is the
    pilot's own time plus half the estimate at 0.02, so every stage must shrink on any day; the whole run,
    pilot included, keeps to it. (The command line's pilot runs at PILOT_SCALE, 0.005.)"""
    t0 = time.perf_counter()
    vq = str(builtin_path("vq"))
    piloted = plan_budget(60, 0.02, seed=0, vq_file=vq, compile=False, pilot_scale=0.002)
    # plan_budget's own budget: the minutes, counted from before its pilot
    assert piloted.seconds == 3600 and t0 <= piloted.start <= t0 + 1.0
    assert piloted.deadline == pytest.approx(piloted.start + 3600 * (1 - RESERVE))
    seconds = (time.perf_counter() - t0 + 0.5 * piloted.estimate(0.02)) / (1 - RESERVE)
    budget = Budget(piloted.costs, seconds, cap=0.02, start=t0)
    metrics = run_recipe(tmp_path, 0, budget, vq, compile=False)
    took = time.perf_counter() - t0
    assert set(budget.scales) == {"vq", "tokens", "t2i", "c2i"}
    assert all(0.002 <= budget.scales[k] < 0.02 for k in ("tokens", "t2i", "c2i"))
    assert metrics["recipes"]["t2i"]["steps"] == int(T2I_RECIPE.steps * budget.scales["t2i"])
    assert took < seconds * 1.05, (seconds, metrics["stage_seconds"])
    assert metrics["budget"]["scales"] == {k: round(v, 4) for k, v in budget.scales.items()}
    assert metrics["budget"]["minutes"] == round(seconds / 60, 2)
    assert metrics["budget"]["total_seconds"] == pytest.approx(took, abs=1.0)


def test_train_command_rejects_negative_minutes(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_main(["--out", str(tmp_path), "--minutes", "-1"])
    assert "--minutes must be >= 0" in capsys.readouterr().err
