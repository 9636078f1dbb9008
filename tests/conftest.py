import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# tests import their shared helpers (tiny.py) by name
sys.path.insert(0, str(Path(__file__).parent))

TESTS = Path(__file__).parent
# Every test in these folders imports or runs a real ComfyUI (provisioned on first use): the inner loop,
# `python -m pytest -m "not comfy and not slow"`, leaves them out.
COMFY_FOLDERS = ("nodes", "integration", "comfy")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.relative_to(TESTS).parts
        if len(parts) > 1 and parts[0] in COMFY_FOLDERS:
            item.add_marker(pytest.mark.comfy)


# Property tests run the same examples on every machine and in CI (derandomize), with no per-example deadline
# (a loaded CI box must not fail them); HYPOTHESIS_PROFILE=explore searches afresh with more examples.
settings.register_profile(
    "gptimg",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("explore", derandomize=False, deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "gptimg"))
