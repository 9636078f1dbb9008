"""Fitting the recipe into a wall-clock budget (gptimg_core/train/budget.py, `train --minutes`)."""

import pytest

from gptimg_core.train.__main__ import main as train_main
from gptimg_core.train.budget import RESERVE, Budget, StageCost, StepClock, stage_costs


class Clock:
    """A clock the test moves by hand: what the budget reads as now."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_step_clock_leaves_out_the_first_steps():
    now = Clock()
    clock = StepClock(skip=2, clock=now)
    now.now += 0.2  # a slow first step (compiling)
    clock.tick()
    clock.tick()
    for _ in range(3):
        now.now += 0.02
        clock.tick()
    assert clock.mean() == pytest.approx(0.02)


def test_step_clock_with_only_warm_up_steps_counts_them_all():
    now = Clock()
    clock = StepClock(skip=3, clock=now)
    now.now += 0.3
    clock.tick()
    clock.tick()
    assert clock.mean() == pytest.approx(0.15)


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


def run_stages(budget: Budget, clock: Clock, actual: dict[str, StageCost]) -> dict[str, float]:
    """Drive a budget as run_recipe does, on a hand-moved clock: each stage starts, asks its scale, takes
    actual[stage].at(scale) seconds and reports them. -> the seconds each stage took."""
    took = {}
    for name in budget.costs:
        started = clock.now
        clock.now += actual[name].at(budget.scale(name))
        took[name] = clock.now - started
        budget.finished(name, took[name])
    return took


# The recipe's four stages as a pilot measures them (seconds: fixed + at scale 1) on a 2-core machine
PILOT_COSTS = {
    "vq": StageCost(20.0, 3_000.0),
    "tokens": StageCost(0.0, 120.0),
    "t2i": StageCost(40.0, 2_000.0),
    "c2i": StageCost(30.0, 400.0),
}


@pytest.mark.parametrize("slower", [0.8, 1.0, 1.2])
def test_recipe_in_a_budget_shrinks_its_steps_and_keeps_to_its_minutes(slower):
    """A 60-minute run (after a 5-minute pilot) on a machine `slower` times the pilot's speed in its per-step
    work: every stage shrinks below the cap, and the run keeps to the budget (the reserve absorbs what the
    first stage could not know), using most of it."""
    clock = Clock()
    clock.now = 300.0  # the pilot ran first; the budget counts from before it
    budget = Budget(PILOT_COSTS, seconds=3_600, cap=1.0, start=0.0, clock=clock)
    actual = {k: StageCost(c.fixed, c.per_scale * slower) for k, c in PILOT_COSTS.items()}
    run_stages(budget, clock, actual)
    assert set(budget.scales) == set(PILOT_COSTS)
    assert all(budget.floor <= s < 1.0 for s in budget.scales.values()), budget.scales
    assert clock.now <= 3_600, (clock.now, budget.scales)
    assert clock.now >= 0.85 * 3_600, (clock.now, budget.scales)  # and the stages did not shrink needlessly
    assert budget.report()["total_seconds"] == pytest.approx(clock.now, abs=0.1)


@pytest.mark.parametrize("slower", [1.3, 2.0])
def test_recipe_in_a_budget_later_stages_follow_a_slowdown_midway(slower):
    """The machine gets busy after the first (longest) stage: the later stages shrink below the first, and
    the run still keeps to its minutes (the average over the fast first stage must not hide the slowdown)."""
    clock = Clock()
    budget = Budget(PILOT_COSTS, seconds=3_600, cap=1.0, clock=clock)
    actual = {k: StageCost(c.fixed, c.per_scale * (1.0 if k == "vq" else slower)) for k, c in PILOT_COSTS.items()}
    run_stages(budget, clock, actual)
    assert budget.scales["t2i"] < budget.scales["vq"] and budget.scales["c2i"] < budget.scales["vq"]
    assert 0.9 * 3_600 <= clock.now <= 3_600, (clock.now, budget.scales)


def test_train_command_rejects_negative_minutes(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_main(["--out", str(tmp_path), "--minutes", "-1"])
    assert "--minutes must be >= 0" in capsys.readouterr().err
