"""Load balancers for ``TapperGateway``: pick one instance of a service for each request.

``TapperGateway(load_balancer=...)`` takes a name (``"round-robin"``, ``"random"``,
``"least-connections"``, ``"weighted"``), or an instance of a ``LoadBalancer`` subclass::

    from tapper import LoadBalancer, TapperGateway

    class CustomBalancer(LoadBalancer):
        def select_instance(self, instances):
            return min(instances, key=lambda i: i.in_flight)

    gateway = TapperGateway(load_balancer=CustomBalancer())
"""

from __future__ import annotations

import random as _random
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence


@dataclass
class ServiceInstance:
    """One routable instance as a balancer sees it (read-only for balancers)."""

    service: str
    instance_id: str
    url: str
    version: str = ""
    weight: int = 1
    tags: List[str] = field(default_factory=list)
    metadata: Dict[str, str] = field(default_factory=dict)
    #: Requests this gateway has in flight to the instance right now.
    in_flight: int = 0


class LoadBalancer:
    """Base class of balancers. Override ``select_instance``.

    ``select_instance(instances)`` gets the healthy instances of one service (never an empty list)
    and returns one of them, or None to answer 503. It runs on the event loop for every request: keep
    it fast and never block. One balancer object serves every service of the gateway.
    ``request_started``/``request_finished`` are called around each proxied request.
    """

    def select_instance(self, instances: Sequence[ServiceInstance]) -> Optional[ServiceInstance]:
        raise NotImplementedError("LoadBalancer subclasses implement select_instance(instances)")

    def request_started(self, instance: ServiceInstance) -> None:
        """Called when a request is sent to ``instance``."""

    def request_finished(self, instance: ServiceInstance) -> None:
        """Called when that request is over (answered or failed)."""


class RoundRobinBalancer(LoadBalancer):
    """Each service's instances in turn (one counter per service)."""

    def __init__(self) -> None:
        self._next: Dict[str, int] = {}

    def select_instance(self, instances: Sequence[ServiceInstance]) -> Optional[ServiceInstance]:
        key = instances[0].service
        n = self._next.get(key, 0)
        self._next[key] = n + 1
        return instances[n % len(instances)]


class RandomBalancer(LoadBalancer):
    """Uniformly at random; pass ``rng`` (a ``random.Random``) for reproducible tests."""

    def __init__(self, rng: Optional[_random.Random] = None) -> None:
        self._rng = rng or _random.Random()

    def select_instance(self, instances: Sequence[ServiceInstance]) -> Optional[ServiceInstance]:
        return self._rng.choice(list(instances))


class LeastConnectionsBalancer(LoadBalancer):
    """Power of two choices over in-flight requests (as the Swift gateway does): two instances at
    random, the one with fewer requests in flight wins."""

    def __init__(self, rng: Optional[_random.Random] = None) -> None:
        self._rng = rng or _random.Random()

    def select_instance(self, instances: Sequence[ServiceInstance]) -> Optional[ServiceInstance]:
        if len(instances) == 1:
            return instances[0]
        a, b = self._rng.sample(list(instances), 2)
        return a if a.in_flight <= b.in_flight else b


class WeightedBalancer(LoadBalancer):
    """nginx's smooth weighted round-robin over the registrations' ``weight``."""

    def __init__(self) -> None:
        self._current: Dict[str, Dict[str, int]] = {}

    def select_instance(self, instances: Sequence[ServiceInstance]) -> Optional[ServiceInstance]:
        state = self._current.setdefault(instances[0].service, {})
        live = {i.instance_id for i in instances}
        for gone in [k for k in state if k not in live]:
            del state[gone]
        total = 0
        best: Optional[ServiceInstance] = None
        for inst in instances:
            w = max(1, int(inst.weight))
            state[inst.instance_id] = state.get(inst.instance_id, 0) + w
            total += w
            if best is None or state[inst.instance_id] > state[best.instance_id]:
                best = inst
        assert best is not None
        state[best.instance_id] -= total
        return best


BALANCERS: Dict[str, Callable[[], LoadBalancer]] = {
    "round-robin": RoundRobinBalancer,
    "random": RandomBalancer,
    "least-connections": LeastConnectionsBalancer,
    "weighted": WeightedBalancer,
}


def make_balancer(spec: Any) -> LoadBalancer:
    """A balancer from a name or a ``LoadBalancer`` instance; a clear error otherwise."""
    if isinstance(spec, LoadBalancer):
        return spec
    if isinstance(spec, type) and issubclass(spec, LoadBalancer):
        raise TypeError(f"tapper: load_balancer={spec.__name__} is a class; pass an instance: load_balancer={spec.__name__}()")
    if isinstance(spec, str) and spec in BALANCERS:
        return BALANCERS[spec]()
    raise ValueError(
        f"tapper: unknown load_balancer {spec!r}: use one of {', '.join(repr(n) for n in BALANCERS)} or a LoadBalancer subclass instance"
    )


__all__ = [
    "LoadBalancer", "ServiceInstance", "RoundRobinBalancer", "RandomBalancer", "LeastConnectionsBalancer", "WeightedBalancer",
    "make_balancer",
]
