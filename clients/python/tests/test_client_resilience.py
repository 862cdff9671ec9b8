"""The client never flaps: a blocked event loop, several workers, a registry restart."""

from __future__ import annotations

import os
import re
import signal
import sys
import textwrap
import threading
import time
from typing import Dict, List, Set

from support import Abort, Procs, Registry, clean_env, free_port, http, wait_for

BLOCKING_APP = """\
import time

from fastapi import FastAPI
from tapper import Service

app = Service(name="blocky", version="1.0.0", ttl=2)(FastAPI())


@app.get("/block")
async def block():
    time.sleep(10)  # a synchronous call inside an async handler: the event loop stalls for 10 s
    return {"blocked": 10}


@app.get("/ok")
async def ok():
    return {"ok": True}
"""


def test_a_blocked_event_loop_does_not_expire_the_instance(procs: Procs, registry: Registry) -> None:
    app = procs.uvicorn(BLOCKING_APP, "blocky", env=clean_env(TAPPER_REGISTRY_URL=registry.url))
    instance_id = f"127.0.0.1-{app.port}"
    registry.wait_instance("blocky", instance_id)
    result: Dict[str, object] = {}

    def call_block() -> None:
        with http() as c:
            c.timeout = 30
            result["response"] = c.get(f"http://127.0.0.1:{app.port}/block", timeout=30)

    caller = threading.Thread(target=call_block)
    caller.start()
    # Make sure the loop is really stuck (else this test would prove nothing): /ok stops answering.
    def ok_stalls() -> bool:
        with http() as c:
            try:
                c.get(f"http://127.0.0.1:{app.port}/ok", timeout=0.5)
            except Exception:  # noqa: BLE001 - a timeout is what we wait for
                return True
        return False

    wait_for(ok_stalls, 5, "the /block handler to stall the event loop")
    # For the whole stall (five TTLs), the instance stays registered and its heartbeats stay fresh.
    ages: List[float] = []
    while caller.is_alive():
        inst = registry.instance("blocky", instance_id)
        assert inst is not None, f"the instance expired while its event loop was blocked\n{app.describe()}"
        ages.append(float(inst["last_heartbeat_age_seconds"]))
        time.sleep(0.2)  # sampling interval of an observation, not a wait for readiness
    caller.join()
    assert result["response"].status_code == 200  # type: ignore[attr-defined]
    assert len(ages) >= 20, ages
    assert max(ages) < 2, f"heartbeats stopped while the loop was blocked (oldest {max(ages)}s, TTL 2s)"


WORKER_APP = """\
import os

from fastapi import FastAPI
from tapper import Service

app = Service(name="workers", version="1.0.0", ttl=TTL)(FastAPI())


@app.get("/pid")
async def pid():
    return {"pid": os.getpid()}
"""


def _ids_and_pids(registry: Registry, port: int, count: int) -> Set[int]:
    instances = registry.wait_count("workers", count, timeout=30)
    ids = [i["instance_id"] for i in instances]
    assert len(set(ids)) == count, ids
    pids: Set[int] = set()
    for i in instances:
        m = re.fullmatch(rf"127\.0\.0\.1-{port}-(\d+)", i["instance_id"])
        assert m, f"instance id {i['instance_id']!r} should be 127.0.0.1-{port}-PID"
        assert i["url"] == f"http://127.0.0.1:{port}"
        pids.add(int(m.group(1)))
    return pids


def _check_pids_serve(port: int, pids: Set[int]) -> None:
    seen: Set[int] = set()

    def all_seen() -> bool:
        with http() as c:
            seen.add(c.get(f"http://127.0.0.1:{port}/pid", headers={"Connection": "close"}).json()["pid"])
        return seen >= pids

    # The ids name the processes that really serve the port.
    wait_for(all_seen, 20, f"every worker pid {sorted(pids)} to answer (seen {sorted(seen)})", interval=0.0)
    assert seen == pids


def test_uvicorn_workers_register_one_instance_each_and_deregister_on_exit(procs: Procs, registry: Registry) -> None:
    # TTL 60: deregistration, not expiry, must empty the catalog.
    app = procs.uvicorn(WORKER_APP.replace("TTL", "60"), "workers", env=clean_env(TAPPER_REGISTRY_URL=registry.url),
                        extra_args=["--workers", "4"])
    pids = _ids_and_pids(registry, app.port, 4)
    assert app.pid not in pids
    _check_pids_serve(app.port, pids)
    app.signal(signal.SIGTERM)
    app.wait_exit(30)
    assert registry.instances("workers") == [], registry.instances("workers")


def test_gunicorn_workers_register_one_instance_each_and_deregister_on_exit(procs: Procs, registry: Registry) -> None:
    app_dir = procs.tmp / "apps"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "gworkers.py").write_text(WORKER_APP.replace("TTL", "60"))
    port = free_port()
    app = procs.start(
        "gunicorn",
        [sys.executable, "-m", "gunicorn", "-k", "uvicorn.workers.UvicornWorker", "-w", "3", "-b", f"127.0.0.1:{port}",
         "--chdir", str(app_dir), "--graceful-timeout", "10", "gworkers:app"],
        env=clean_env(TAPPER_REGISTRY_URL=registry.url), cwd=app_dir,
    )
    pids = _ids_and_pids(registry, port, 3)
    assert app.pid not in pids
    _check_pids_serve(port, pids)
    app.signal(signal.SIGTERM)
    app.wait_exit(30)
    assert registry.instances("workers") == [], registry.instances("workers")


def test_every_instance_is_back_within_one_ttl_after_a_registry_restart(procs: Procs) -> None:
    ttl = 3.0
    port = free_port()
    registry = procs.registry(port=port)
    env = clean_env(TAPPER_REGISTRY_URL=registry.url)
    multi = procs.uvicorn(WORKER_APP.replace("TTL", repr(ttl)), "workers", env=env, extra_args=["--workers", "2"])
    single = procs.uvicorn(WORKER_APP.replace("TTL", repr(ttl)), "single", env=env)
    before = registry.wait_count("workers", 3, timeout=30)
    ids = {i["instance_id"] for i in before}
    assert f"127.0.0.1-{single.port}" in ids

    registry.proc.kill()  # SIGKILL: the memory backend forgets everything
    restarted = procs.registry(port=port)
    back_from = time.monotonic()
    wait_for(lambda: {i["instance_id"] for i in restarted.instances("workers")} == ids, ttl,
             f"all of {sorted(ids)} to register again with the restarted registry within one TTL ({ttl}s)")
    assert time.monotonic() - back_from <= ttl
    assert multi.alive() and single.alive()
