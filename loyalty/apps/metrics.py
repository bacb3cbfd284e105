"""Prometheus metrics of the tills' API: requests by route template and status, and their latency.

With ``--workers N`` every worker is its own process, so the counts live in
files under ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess
mode) and ``/metrics`` adds up all workers. :func:`use_multiprocess_dir` sets
that up before the workers start; prometheus_client is imported only when an
app is built, because it picks its storage when it is first imported.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Tills answer in milliseconds; a write that queues for a lock may take seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def use_multiprocess_dir(path: str | None = None) -> str:
    """Point prometheus_client at a folder for all workers' counts, emptied first. Returns the folder.

    ``path`` defaults to ``$PROMETHEUS_MULTIPROC_DIR`` or a new temporary folder.
    Counts left by an earlier run would be added to this one's: the folder is cleaned.
    """
    path = path or os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="loyalty-api-metrics-")
    os.makedirs(path, mode=0o700, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
    os.environ[MULTIPROC_ENV] = path
    if "prometheus_client" in sys.modules:
        # Imported already (by a library): make metrics made from now on use the files.
        from prometheus_client import values

        values.ValueClass = values.get_value_class()
    return path


def remove_multiprocess_dir(path: str) -> None:
    """Remove a folder made by :func:`use_multiprocess_dir` (at shutdown)."""
    shutil.rmtree(path, ignore_errors=True)


class ApiMetrics:
    """The API's counters, on a registry of their own (several apps may live in one test process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # In multiprocess mode the values go to files; registering them would report this
        # process only, so the page is built from the files instead (see render()).
        self.registry = CollectorRegistry(auto_describe=True)
        own = None if self.multiprocess else self.registry
        self.requests = Counter(
            "loyalty_api_requests", "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"], registry=own,
        )
        self.latency = Histogram(
            "loyalty_api_request_duration_seconds", "Time to answer, by method and route template",
            ["method", "route"], buckets=BUCKETS, registry=own,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The text exposition of every worker's counts and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            registry: Any = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
