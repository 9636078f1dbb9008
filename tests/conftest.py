import sys
from pathlib import Path

import pytest

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
