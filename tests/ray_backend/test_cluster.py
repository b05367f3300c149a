"""The multi-node scenarios, run in a pytest subprocess of their own.

A ``ray.cluster_utils.Cluster`` starts its own head node and the driver must
``ray.init`` against it, while this process already holds the session's local Ray
(one ``ray.init`` per process). A subprocess keeps both rules, needs no test ordering,
and still runs under a plain ``pytest``; the scenarios stay ordinary pytest tests with
full assertion output (shown here on failure).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .backends import import_ray

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).with_name("cluster_scenarios.py")


@pytest.mark.timeout(400)
def test_multi_node_scenarios() -> None:
    """Losing a node under load (graceful, crash) answers every caller; nodes use loopback."""
    import_ray()  # skip without Ray, except on CI
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(SCENARIOS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=380,
        check=False,
        env={**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert re.search(r"^3 passed", completed.stdout, re.MULTILINE), output
