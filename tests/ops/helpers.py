"""Helpers for the operations tests: bearer headers, metrics, the CLI as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import REPO, SECRET, token

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def bearer(role: str = "moderator", **kw: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, **kw)}"}


async def fetch(method: str, url: str, **kw: Any) -> httpx.Response:
    """One HTTP request without blocking the test's event loop."""
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.request(method, url, **kw)


def scrape(base: str) -> Samples:
    """Every sample of ``/metrics`` by (name, labels)."""
    response = httpx.get(f"{base}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any livehub or Redis settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LIVEHUB_") and k not in ("REDIS_URL", "PORT")}
    env.update({"LIVEHUB_SECRET": SECRET, "LIVEHUB_ENV": "test"})
    env.update(extra)
    return env


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60
        ) -> subprocess.CompletedProcess[str]:
    """``livehub ARGS...`` as a child process, its output as text."""
    return subprocess.run([sys.executable, "-m", "livehub", *args], cwd=REPO,
                          env=env if env is not None else clean_env(), capture_output=True,
                          text=True, timeout=timeout)
