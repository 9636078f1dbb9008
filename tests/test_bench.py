"""Every bench script runs as the README documents it (`python bench/X.py`), from a fresh clone, with
nothing on PYTHONPATH and from any working directory: each runs with --quick (a tiny model) here."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))


def test_there_are_bench_scripts():
    assert {p.name for p in SCRIPTS} >= {"decode_speed.py"}


@pytest.mark.slow  # each script starts its own Python and loads models: about a minute in all
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bench_script_runs_from_elsewhere(script, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run(
        [sys.executable, str(script), "--quick", "--threads", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"{script.name} --quick failed:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    assert run.stdout.strip(), f"{script.name} --quick printed nothing"
