"""Balancers, the in-memory registry, and Service + TapperGateway over a custom backend in one process."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any, List

import httpx
import pytest

from support import free_port, wait_for
from tapper import LoadBalancer, Service, TapperGateway
from tapper.balancing import LeastConnectionsBalancer, RoundRobinBalancer, ServiceInstance, WeightedBalancer, make_balancer
from tapper.registry import InMemoryRegistry, RegistryBackend, RegistryError


def insts(*weights: int) -> List[ServiceInstance]:
    return [ServiceInstance("s", f"i{n}", f"http://127.0.0.1:{9000 + n}", weight=w) for n, w in enumerate(weights)]


def test_round_robin_cycles_per_service() -> None:
    b = RoundRobinBalancer()
    xs = insts(1, 1, 1)
    assert [b.select_instance(xs).instance_id for _ in range(6)] == ["i0", "i1", "i2", "i0", "i1", "i2"]


def test_weighted_is_nginx_smooth_weighted_round_robin() -> None:
    b = WeightedBalancer()
    xs = insts(5, 1, 1)
    # nginx's documented sequence for weights 5, 1, 1: a a b a c a a
    assert [b.select_instance(xs).instance_id for _ in range(7)] == ["i0", "i0", "i1", "i0", "i2", "i0", "i0"]


def test_least_connections_prefers_fewer_in_flight() -> None:
    b = LeastConnectionsBalancer(random.Random(7))
    xs = insts(1, 1)
    xs[0].in_flight = 10
    assert all(b.select_instance(xs).instance_id == "i1" for _ in range(20))


def test_balancer_specs_are_checked() -> None:
    assert isinstance(make_balancer("weighted"), WeightedBalancer)
    with pytest.raises(ValueError, match="unknown load_balancer 'fastest'"):
        TapperGateway(load_balancer="fastest", registry=InMemoryRegistry())
    with pytest.raises(TypeError, match="pass an instance"):
        make_balancer(RoundRobinBalancer)
    with pytest.raises(TypeError, match="authenticate"):
        TapperGateway(auth_provider=object(), registry=InMemoryRegistry())
    with pytest.raises(TypeError, match="RegistryBackend"):
        Service(name="x", registry=object())  # type: ignore[arg-type]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_in_memory_registry_ttl_conflicts_and_blocking_query() -> None:
    clock = FakeClock()
    r = InMemoryRegistry(clock=clock)
    created, rec = r.register("users", "a", {"url": "http://127.0.0.1:1", "routes": [{"methods": ["get"], "path": "/u/{id}"}], "ttl_seconds": 5})
    assert created and rec["routes"][0]["methods"] == ["GET"] and rec["create_index"] == rec["index"] == 1
    assert r.register("users", "a", {"url": "http://127.0.0.1:1", "ttl_seconds": 5})[0] is False
    r.register("users", "a", {"url": "http://127.0.0.1:1", "routes": [{"methods": ["GET"], "path": "/u/{id}"}], "ttl_seconds": 5})
    with pytest.raises(RegistryError) as e:
        r.register("other", "b", {"url": "http://127.0.0.1:2", "routes": [{"methods": ["GET"], "path": "/u/{user_id}"}]})
    assert e.value.status == 409 and "users" in e.value.message
    clock.now += 4
    assert r.heartbeat("users", "a")
    clock.now += 4
    assert len(r.catalog()["services"]) == 1  # the heartbeat renewed it
    clock.now += 2
    assert r.catalog()["services"] == []  # expired
    assert r.heartbeat("users", "a") is False

    index = r.catalog()["index"]
    done: List[Any] = []
    t = threading.Thread(target=lambda: done.append(r.catalog(index=index, wait=10)))
    t.start()
    r.register("users", "c", {"url": "http://127.0.0.1:3"})
    t.join(5)
    assert done and done[0]["index"] > index
    start = time.monotonic()
    assert r.catalog(index=done[0]["index"], wait=0.3)["index"] == done[0]["index"]
    assert time.monotonic() - start >= 0.3


class RecordingBackend(InMemoryRegistry):
    """A custom backend, as users write them: extends the interface and sees every call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: List[str] = []

    def register(self, service: str, instance_id: str, registration: Any) -> Any:
        self.calls.append("register")
        return super().register(service, instance_id, registration)


def test_service_and_gateway_share_a_custom_backend_under_real_uvicorn() -> None:
    import uvicorn
    from fastapi import FastAPI

    backend = RecordingBackend()
    assert isinstance(backend, RegistryBackend)
    svc_port, gw_port = free_port(), free_port()
    svc = FastAPI()

    @svc.get("/items/{item_id:int}")
    async def item(item_id: int) -> Any:
        return {"item": item_id}

    Service(name="items", registry=backend, url=f"http://127.0.0.1:{svc_port}", ttl=5).attach(svc)
    front = FastAPI()
    gateway = TapperGateway(registry=backend, health_interval=0)
    front.mount("/", gateway)

    async def scenario() -> None:
        servers = [uvicorn.Server(uvicorn.Config(a, host="127.0.0.1", port=p, log_level="warning")) for a, p in ((svc, svc_port), (front, gw_port))]
        tasks = [asyncio.create_task(s.serve()) for s in servers]
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=5) as c:
                deadline = time.monotonic() + 15
                while True:
                    try:
                        r = await c.get(f"http://127.0.0.1:{gw_port}/items/3")
                        if r.status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, "the item service never became routable through the gateway"
                    await asyncio.sleep(0.05)
                assert r.json() == {"item": 3}
                status = gateway.get_service_status()
                assert status["services"]["items"]["instances"][0]["url"] == f"http://127.0.0.1:{svc_port}"
            servers[0].should_exit = True
            await tasks[0]
            assert backend.catalog()["services"] == []  # deregistered on shutdown
        finally:
            for s in servers:
                s.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())
    assert backend.calls == ["register"]


class DeafRegistry(InMemoryRegistry):
    """A backend whose blocking query never reports a change (a lost notification): only the
    periodic full resync can bring news."""

    def catalog(self, index: Any = None, wait: float = 0.0) -> Any:
        if index is not None:
            time.sleep(min(wait, 0.2))
            snap = super().catalog()
            return {**snap, "index": index}
        return super().catalog()


def test_the_discovery_interval_resyncs_what_the_watch_missed() -> None:
    backend = DeafRegistry()
    fast = TapperGateway(registry=backend, discovery_interval=1, health_interval=0)
    slow = TapperGateway(registry=backend, discovery_interval=600, health_interval=0)
    for g in (fast, slow):
        g.start()
    try:
        for g in (fast, slow):
            wait_for(lambda: g.get_service_status()["registry"] == "reachable", 5, "the first catalog read")
        backend.register("late", "i1", {"url": "http://127.0.0.1:9", "routes": [{"methods": ["GET"], "path": "/late"}]})
        wait_for(lambda: "late" in fast.get_service_status()["services"], 5, "the 1 s resync to pick up the registration")
        # The same news never reached the gateway that resyncs every 10 minutes: the watch is deaf.
        assert "late" not in slow.get_service_status()["services"]
    finally:
        fast.stop()
        slow.stop()
