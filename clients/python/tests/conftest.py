"""Fixtures: every process a test starts is killed when it ends; logs are printed when it fails."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from support import Procs, Registry


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def procs(tmp_path: Path, request: pytest.FixtureRequest):
    p = Procs(tmp_path)
    yield p
    failed = getattr(getattr(request.node, "rep_call", None), "failed", False)
    try:
        if failed:
            sys.stderr.write("\n" + p.dump() + "\n")
    finally:
        p.close()


@pytest.fixture
def registry(procs: Procs) -> Registry:
    return procs.registry()
