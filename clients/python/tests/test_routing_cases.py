"""The shared routing cases (Tests/Fixtures/routing-cases.json), also run by the Swift suite
RoutingCasesTests: the Python gateway's matcher must give the Swift gateway's answers."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Tuple

import pytest

from support import REPO
from tapper._routing import Match, MethodNotAllowed, RouteTable, path_violation

FIXTURE = REPO / "Tests" / "Fixtures" / "routing-cases.json"
CASES: List[Dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))["cases"]


def table_for(case: Dict[str, Any]) -> RouteTable:
    records = []
    for i, inst in enumerate(case["instances"]):
        records.append({
            "service": inst["service"], "instance_id": f"i{i + 1}", "create_index": i + 1, "index": i + 1,
            "url": f"http://127.0.0.1:{9000 + i}", "prefix": inst.get("prefix", ""), "routes": inst["routes"],
        })
    # One catalog service per record is enough: the table orders by create index, not by grouping.
    return RouteTable.from_catalog({"index": len(records), "services": [{"name": r["service"], "instances": [r]} for r in records]})


def outcome(table: RouteTable, method: str, path: str) -> Tuple[Any, ...]:
    if path_violation(path):
        return (400,)
    res = table.resolve(method, path)
    if isinstance(res, Match):
        return (200, res.entry.service, res.entry.template.raw, res.params)
    if isinstance(res, MethodNotAllowed):
        return (405, res.allowed)
    return (404,)


def test_the_fixture_is_there_and_not_empty() -> None:
    assert len(CASES) >= 10
    assert sum(len(c["requests"]) for c in CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_shared_routing_case(case: Dict[str, Any]) -> None:
    table = table_for(case)
    assert [vars(c) for c in table.conflicts] == case.get("conflicts", [])
    mismatches = []
    for r in case["requests"]:
        if r["status"] == 200:
            expected: Tuple[Any, ...] = (200, r["service"], r["route"], r["params"])
        elif r["status"] == 405:
            expected = (405, r["allow"])
        else:
            expected = (r["status"],)
        got = outcome(table, r["method"], r["path"])
        if got != expected:
            mismatches.append(f"{r['method']} {r['path']}: got {got}, expected {expected}")
    assert mismatches == []


def test_a_case_that_disagrees_is_caught() -> None:
    # The checker itself can fail: a wrong expectation is reported.
    case = {"instances": [{"service": "a", "routes": [{"methods": ["GET"], "path": "/a/{x:int}"}]}]}
    assert outcome(table_for(case), "GET", "/a/1") == (200, "a", "/a/{x:int}", {"x": "1"})
    assert outcome(table_for(case), "GET", "/a/one") != (200, "a", "/a/{x:int}", {"x": "one"})
