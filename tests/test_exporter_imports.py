"""Exporters are opt-in: `import tasker_aio` loads neither prometheus_client nor OpenTelemetry."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

EXPORTERS = ("opentelemetry", "prometheus_client")


def imported_after(statement: str) -> set[str]:
    """Which of EXPORTERS' packages a fresh interpreter has loaded after ``statement``."""
    program = (
        f"import json, sys\n{statement}\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({EXPORTERS!r}))))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=True
    )
    return set(json.loads(completed.stdout))


def test_import_tasker_aio_loads_no_exporter_library() -> None:
    """`import tasker_aio` (and its public names) imports neither library."""
    assert imported_after("import tasker_aio\nfrom tasker_aio import *") == set()


def test_each_exporter_loads_only_its_own_library() -> None:
    """tasker_aio.prometheus needs only prometheus_client; tasker_aio.otel only OpenTelemetry."""
    pytest.importorskip("prometheus_client")
    pytest.importorskip("opentelemetry")
    assert imported_after("import tasker_aio.prometheus") == {"prometheus_client"}
    assert imported_after("import tasker_aio.otel") == {"opentelemetry"}


def test_otel_needs_only_the_api() -> None:
    """tasker_aio.otel imports nothing of the OpenTelemetry SDK."""
    pytest.importorskip("opentelemetry")
    program = (
        "import sys\nimport tasker_aio.otel\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=True
    )
    assert completed.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("tasker_aio.prometheus", {"DEFAULT_BUCKETS", "PrometheusExporter", "instrument"}),
        ("tasker_aio.otel", {"OtelMetrics", "SpanTracer", "instrument", "tracer"}),
    ],
)
def test_exporter_modules_export_their_api(module: str, names: set[str]) -> None:
    """Each exporter module's __all__ is its public API, sorted."""
    pytest.importorskip(module)
    exported = importlib.import_module(module).__all__
    assert set(exported) == names
    assert list(exported) == sorted(exported)
