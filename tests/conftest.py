import os
import sys
from pathlib import Path

# tests import their shared helpers (tiny.py) by name
sys.path.insert(0, str(Path(__file__).parent))

from hypothesis import HealthCheck, settings

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
