"""Fit the recipe into a wall-clock budget: `python -m gptimg_core.train --minutes 90`.

Fixed step counts cannot promise a finishing time: on the same 2-core machine the recipe's step times
vary from day to day by up to twice (docs/training-notes.md, "Time"). So a pilot runs the whole pipeline at a small scale first and measures each stage here: the seconds
that do not grow with the recipe (evaluations, compiling, saving) and the seconds per step. Each stage
then starts at the largest scale (at most the run's --scale, 1 by default: the recipe as written) at
which it and the stages after it fit in what is left of the budget, from the pilot's times multiplied by
how far the finished stages (or the latest, if worse) ran over their estimates. Every step count (and the
scene pools) shrinks by that scale; learning-rate schedules follow the step counts. Tests drive it with an
injected clock (tests/test_budget.py); no test times a real run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Plan to end this share of the budget early: the last stage absorbs every misestimate before it, and the
# pilot's step times can be optimistic (the late run in docs/training-notes.md, "Time").
RESERVE = 0.03
SMALLEST = 0.1  # no stage shrinks below this share of the cap: fewer steps would train nothing worth having


class StepClock:
    """Mean seconds per step after the first `skip` steps (which pay for compiling and warm-up)."""

    def __init__(self, skip: int = 3, clock: Callable[[], float] = time.perf_counter) -> None:
        self.skip, self.steps, self.clock = skip, 0, clock
        self.t0 = self.since = clock()

    def tick(self) -> None:
        """Call after each step."""
        self.steps += 1
        if self.steps == self.skip:
            self.since = self.clock()

    def mean(self) -> float:
        """Seconds per step, over the steps after the first `skip` (all steps if there were no more)."""
        if self.steps > self.skip:
            return (self.clock() - self.since) / (self.steps - self.skip)
        return (self.clock() - self.t0) / max(1, self.steps)


@dataclass(frozen=True)
class StageCost:
    """One stage's estimated seconds at scale s: fixed + s * per_scale."""

    fixed: float
    per_scale: float

    def at(self, scale: float) -> float:
        return self.fixed + scale * self.per_scale


def stage_costs(pilot: dict, full_steps: dict[str, int], full_scenes: int) -> dict[str, StageCost]:
    """Each stage's cost from a pilot run's training_metrics (stage_seconds, recipes, step_seconds)
    and the recipe's step counts (full_steps, by stage) and scene count (both pools) at scale 1."""
    costs = {}
    for stage, seconds in pilot["stage_seconds"].items():
        if stage == "tokens":
            per_scene = seconds / pilot["tokens"]["scenes"]
            costs[stage] = StageCost(0.0, per_scene * full_scenes)
        elif "step_seconds" in pilot.get(stage, {}):
            step = pilot[stage]["step_seconds"]
            fixed = max(0.0, seconds - step * pilot["recipes"][stage]["steps"])
            costs[stage] = StageCost(fixed, step * full_steps[stage])
        else:
            costs[stage] = StageCost(seconds, 0.0)  # a stage that does not scale (loading a given VQ)
    return costs


class Budget:
    """Scales for the stages of one run, each planned as the stage starts.

    costs: the stages to run, in order, with their estimated costs; seconds: the budget, counted from
    `start` (a clock reading; default now), of which the plan keeps RESERVE back; cap: the largest scale
    (the run's --scale)."""

    def __init__(
        self,
        costs: dict[str, StageCost],
        seconds: float,
        cap: float = 1.0,
        start: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.costs, self.cap, self.clock, self.seconds = dict(costs), cap, clock, seconds
        self.start = clock() if start is None else start
        self.deadline = self.start + seconds * (1 - RESERVE)
        self.predicted = self.observed = 0.0  # estimated and measured seconds of the finished stages
        self.latest = (0.0, 0.0)  # ... and of the latest one
        self.scales: dict[str, float] = {}
        self.floor = SMALLEST * cap
        if self._fit(next(iter(self.costs))) < self.floor:
            raise ValueError(
                f"train --minutes: {seconds / 60:.1f} minutes are too few for the recipe here: the pilot "
                f"estimates {self.estimate(self.floor) / 60:.1f} minutes at scale {self.floor:g} (the smallest) "
                f"and {self.estimate(cap) / 60:.1f} at scale {cap:g}; give more minutes, or --minutes 0 to run "
                f"the step counts as written"
            )

    def slowdown(self) -> float:
        """Measured over estimated seconds of the finished stages, or of the latest one if that ran slower
        (a machine that got busy midway: the average over a long fast stage before would hide it); 1 until
        they add up to a few seconds, and at least 0.5 (a fast stage lets the later ones grow, within reason)."""
        ratios = [o / p for p, o in ((self.predicted, self.observed), self.latest) if p > 5]
        return max(0.5, *ratios) if ratios else 1.0

    def estimate(self, scale: float) -> float:
        """Estimated seconds of the whole run at one scale (the pilot's times, before any stage ran)."""
        return sum(c.at(scale) for c in self.costs.values())

    def _fit(self, stage: str) -> float:
        """Largest scale (<= cap) at which stage and the stages after it fit in the time left."""
        names = list(self.costs)
        rest = [self.costs[s] for s in names[names.index(stage) :]]
        left = (self.deadline - self.clock()) / self.slowdown()
        per = sum(c.per_scale for c in rest)
        return self.cap if per <= 0 else min(self.cap, (left - sum(c.fixed for c in rest)) / per)

    def scale(self, stage: str) -> float:
        """The scale to run stage at now (at least the floor: a late stage still trains, and overruns)."""
        s = self._fit(stage)
        if s < self.floor:
            log.warning(
                "budget: %s needs more time than is left; it runs at scale %.3f and overruns", stage, self.floor
            )
            s = self.floor
        self.scales[stage] = s
        log.info(
            "budget: %s at scale %.3f (%.0f s left, finished stages took %.2fx their estimate)",
            stage, s, self.deadline - self.clock(), self.slowdown(),
        )  # fmt: skip
        return s

    def finished(self, stage: str, seconds: float) -> None:
        """Record the stage's measured seconds against its estimate at the scale it ran at."""
        self.latest = (self.costs[stage].at(self.scales[stage]), seconds)
        self.predicted += self.latest[0]
        self.observed += seconds

    def report(self) -> dict:
        """What training_metrics.json records of the plan: the budget, each stage's scale, the time so far."""
        return {
            "minutes": round(self.seconds / 60, 2),
            "scales": {k: round(v, 4) for k, v in self.scales.items()},
            "total_seconds": round(self.clock() - self.start, 1),
        }
