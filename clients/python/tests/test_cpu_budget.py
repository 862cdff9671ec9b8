"""The gateway starts one I/O thread per CPU it may use (affinity mask, cgroup quota), not per host core."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from support import TAPPER_BIN, Procs, free_port, require_binary, wait_for

LINE = re.compile(r"gateway listening on http://127\.0\.0\.1:\d+ \((\d+) I/O threads?\)")


def threads_started(procs: Procs, *prefix: str) -> int:
    require_binary()
    p = procs.start("gateway", [*prefix, str(TAPPER_BIN), "gateway", "serve", "--port", str(free_port()), "--registry-port", str(free_port())])
    m = wait_for(lambda: LINE.search(p.output) or (None if p.alive() else pytest.fail(p.describe())), 20, "the gateway's listening line")
    return int(m.group(1))


def test_threads_follow_the_affinity_mask(procs: Procs) -> None:
    assert shutil.which("taskset"), "taskset (util-linux) is needed"
    allowed = sorted(os.sched_getaffinity(0))
    assert threads_started(procs) == len(allowed)
    # Pinned to one CPU: one reactor, whatever the host has.
    assert threads_started(procs, "taskset", "-c", str(allowed[0])) == 1
