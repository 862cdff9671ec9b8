"""The gateway's route table, in Python: the same semantics as the Swift `RouteTable` and `PathSafety`.

Both gateways are checked against one file of cases, `Tests/Fixtures/routing-cases.json`.

Matching precedence at each path segment, first match wins: literal > typed parameter (`int`,
`uuid`, `float`) > plain `{name}` (`str`) > `{rest:path}`. The search backtracks, so a more specific
branch that dead-ends falls back to the next one. A path that matches with other methods only gives
405 with the union of those methods; a `GET` route also answers `HEAD`, as in Starlette. Matching
walks a trie, so its cost does not grow with the number of routes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

_RANK = {"int": 0, "uuid": 1, "float": 2, "str": 3, "path": 4}
_HEX = "0123456789abcdefABCDEF"
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_FLOAT_RE = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)


def percent_decode(segment: str) -> Optional[str]:
    """Decodes `%XX` escapes; None for a malformed escape or bytes that are not UTF-8."""
    if "%" not in segment:
        return segment
    raw = segment.encode("utf-8")
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        b = raw[i]
        if b == 0x25:  # '%'
            if i + 2 >= n:
                return None
            h, l = chr(raw[i + 1]), chr(raw[i + 2])
            if h not in _HEX or l not in _HEX:
                return None
            out.append(int(h + l, 16))
            i += 3
        else:
            out.append(b)
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        return None


def path_violation(path: str) -> Optional[str]:
    """Why the gateway refuses `path` (the part before '?') with 400, or None.

    Paths the gateway and an upstream could read differently are refused, never normalised: dot
    segments (raw or encoded), encoded '/' or '\\', raw backslashes, control bytes, bad escapes.
    """
    raw = path.encode("utf-8", "surrogateescape")
    n = len(raw)
    i = 0
    segment_start = True
    dots = 0
    while i < n:
        b = raw[i]
        c = b
        i += 1
        if b == 0x25:
            if i + 1 >= n:
                return "malformed percent-encoding in the path"
            h, l = chr(raw[i]), chr(raw[i + 1])
            if h not in _HEX or l not in _HEX:
                return "malformed percent-encoding in the path"
            i += 2
            c = int(h + l, 16)
            if c in (0x2F, 0x5C):
                return "encoded '/' or '\\' (%2F, %5C) are not allowed in paths"
        elif b == 0x5C:
            return "'\\' is not allowed in paths"
        if c < 0x20 or c == 0x7F:
            return "control characters are not allowed in paths"
        if b == 0x2F:
            if not segment_start and dots in (1, 2):
                return "dot segments ('.' or '..') are not allowed in paths"
            segment_start = False
            dots = 0
            continue
        segment_start = False
        if c == 0x2E:
            if dots >= 0:
                dots += 1
        else:
            dots = -1
    if dots in (1, 2):
        return "dot segments ('.' or '..') are not allowed in paths"
    return None


def convertor_accepts(convertor: str, segment: str) -> bool:
    """Whether a percent-decoded segment is accepted by a Starlette convertor (ASCII rules, as in Swift)."""
    if convertor in ("str", "path"):
        return segment != ""
    if convertor == "int":
        return segment != "" and all("0" <= ch <= "9" for ch in segment)
    if convertor == "float":
        return _FLOAT_RE.fullmatch(segment) is not None
    if convertor == "uuid":
        return _UUID_RE.fullmatch(segment) is not None
    return False


@dataclass(frozen=True)
class RouteTemplate:
    """A parsed FastAPI/Starlette path template: `/users/{user_id}`, `/items/{id:int}`, `/files/{rest:path}`."""

    raw: str
    # ("lit", text) with the text percent-decoded, or ("param", name, convertor)
    segments: Tuple[Tuple[str, ...], ...]

    @classmethod
    def parse(cls, raw: str) -> "RouteTemplate":
        def fail(message: str) -> ValueError:
            return ValueError(f"tapper: route template {raw!r}: {message}")

        if not isinstance(raw, str) or not raw.startswith("/"):
            raise fail("a path template must start with '/'")
        if any(ch in raw for ch in " ?#\\") or re.search(r"[\x00-\x1f\x7f]", raw):
            raise fail("must not contain spaces, '?', '#', '\\' or control characters")
        parts = raw[1:].split("/")
        segments: List[Tuple[str, ...]] = []
        names = set()
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                if not last:
                    raise fail("empty path segment ('//')")
                segments.append(("lit", ""))
                continue
            if part in (".", ".."):
                raise fail("dot segments ('.' or '..') are not allowed")
            if "{" not in part and "}" not in part:
                decoded = percent_decode(part)
                if decoded is None:
                    raise fail(f"invalid percent-encoding in {part!r}")
                segments.append(("lit", decoded))
                continue
            if not (part.startswith("{") and part.endswith("}") and part.count("{") == 1 and part.count("}") == 1):
                raise fail(f"a parameter must be a whole path segment like '{{name}}' (found {part!r})")
            name, _, conv = part[1:-1].partition(":")
            conv = conv or "str"
            if not _IDENT_RE.fullmatch(name):
                raise fail(f"parameter name {name!r} must be an identifier")
            if conv not in _RANK:
                raise fail(f"unknown convertor {conv!r} (use str, int, float, uuid or path)")
            if name in names:
                raise fail(f"duplicate parameter name {name!r}")
            if conv == "path" and not last:
                raise fail(f"'{{{name}:path}}' must be the last segment")
            names.add(name)
            segments.append(("param", name, conv))
        return cls(raw, tuple(segments))

    @property
    def shape(self) -> str:
        """The template with parameter names erased: equal shapes match exactly the same paths."""
        return "/" + "/".join(s[1] if s[0] == "lit" else "{:%s}" % s[2] for s in self.segments)

    @property
    def parameter_names(self) -> List[str]:
        return [s[1] for s in self.segments if s[0] == "param"]


@dataclass
class RouteEntry:
    """One route: its owner, public template, method (one, or none for any) and the instances that declared it."""

    service: str
    template: RouteTemplate
    methods: Tuple[str, ...]
    instance_ids: List[str]
    is_public: bool
    prefix_segments: int = 0


@dataclass
class Conflict:
    template: str
    method: str
    owner: str
    refused: str


@dataclass
class Match:
    entry: RouteEntry
    params: Dict[str, str]
    status: int = 200


@dataclass
class MethodNotAllowed:
    allowed: List[str]
    status: int = 405


@dataclass
class NotFound:
    status: int = 404


Resolution = Union[Match, MethodNotAllowed, NotFound]


class _Node:
    __slots__ = ("literals", "params", "catch_all", "by_method", "any_method", "has_endpoint")

    def __init__(self) -> None:
        self.literals: Dict[str, "_Node"] = {}
        self.params: List[Tuple[str, "_Node"]] = []  # sorted by convertor rank
        self.catch_all: Optional["_Node"] = None
        self.by_method: Dict[str, int] = {}
        self.any_method = -1
        self.has_endpoint = False


class RouteTable:
    """An immutable routing trie. Build a new one whenever the catalog changes and swap it in."""

    def __init__(self, entries: Sequence[RouteEntry] = (), conflicts: Sequence[Conflict] = (), index: int = 0) -> None:
        self.entries: List[RouteEntry] = list(entries)
        for e in self.entries:
            e.instance_ids.sort()
        self.conflicts: List[Conflict] = list(conflicts)
        self.index = index
        self._root = _Node()
        for i, entry in enumerate(self.entries):
            node = self._root
            for seg in entry.template.segments:
                if seg[0] == "lit":
                    node = node.literals.setdefault(seg[1], _Node())
                elif seg[2] == "path":
                    if node.catch_all is None:
                        node.catch_all = _Node()
                    node = node.catch_all
                else:
                    child = next((n for c, n in node.params if c == seg[2]), None)
                    if child is None:
                        child = _Node()
                        node.params.append((seg[2], child))
                        node.params.sort(key=lambda p: _RANK[p[0]])
                    node = child
            node.has_endpoint = True
            if entry.methods:
                for m in entry.methods:
                    node.by_method[m] = i
            else:
                node.any_method = i

    @classmethod
    def from_catalog(cls, catalog: Mapping[str, Any]) -> "RouteTable":
        """Compiles every instance's routes of a catalog (the registry's `GET /v1/catalog` body).

        Instances of one service share routes; when two services claim the same method and template
        shape, the older registration (lower create index) keeps it and the other is in `conflicts`.
        """
        records = [i for s in catalog.get("services", []) for i in s.get("instances", [])]
        records.sort(key=lambda r: (int(r.get("create_index", 0)), str(r.get("service", "")), str(r.get("instance_id", ""))))
        builder = RouteTableBuilder()
        for r in records:
            prefix = r.get("prefix") or ""
            prefix_segments = len([p for p in prefix.split("/") if p])
            for route in r.get("routes") or []:
                try:
                    template = RouteTemplate.parse(prefix + route.get("path", ""))
                except ValueError:
                    continue
                builder.add(
                    r["service"], r["instance_id"], template, [str(m).upper() for m in route.get("methods") or []],
                    bool(route.get("public", False)), prefix_segments,
                )
        return builder.build(int(catalog.get("index", 0)))

    def resolve(self, method: str, path: str) -> Resolution:
        """Resolves a request. `path` is the path part of the target, still percent-encoded (no query)."""
        if not path.startswith("/"):
            return NotFound()
        decoded: List[str] = []
        for s in path[1:].split("/"):
            d = percent_decode(s)
            if d is None:
                return NotFound()
            decoded.append(d)
        allowed: set = set()
        captures: List[str] = []
        found = self._visit(self._root, decoded, 0, method, allowed, captures)
        if found is not None:
            entry = self.entries[found]
            return Match(entry, dict(zip(entry.template.parameter_names, captures)))
        if not allowed:
            return NotFound()
        return MethodNotAllowed(sorted(allowed))

    def _endpoint(self, node: _Node, method: str, allowed: set) -> Optional[int]:
        if not node.has_endpoint:
            return None
        if method in node.by_method:
            return node.by_method[method]
        if method == "HEAD" and "GET" in node.by_method:
            return node.by_method["GET"]
        if node.any_method >= 0:
            return node.any_method
        allowed.update(node.by_method)
        if "GET" in node.by_method:
            allowed.add("HEAD")
        return None

    def _visit(self, node: _Node, segments: List[str], pos: int, method: str, allowed: set, captures: List[str]) -> Optional[int]:
        if pos == len(segments):
            return self._endpoint(node, method, allowed)
        segment = segments[pos]
        child = node.literals.get(segment)
        if child is not None:
            found = self._visit(child, segments, pos + 1, method, allowed, captures)
            if found is not None:
                return found
        for conv, child in node.params:
            if convertor_accepts(conv, segment):
                captures.append(segment)
                found = self._visit(child, segments, pos + 1, method, allowed, captures)
                if found is not None:
                    return found
                captures.pop()
        if node.catch_all is not None:
            captures.append("/".join(segments[pos:]))
            found = self._endpoint(node.catch_all, method, allowed)
            if found is not None:
                return found
            captures.pop()
        return None


class RouteTableBuilder:
    """Accumulates routes, merging instances of one service, refusing another service's claim on a
    method and template shape it does not own."""

    def __init__(self) -> None:
        self._owners: Dict[Tuple[str, str], int] = {}
        self._methods_by_shape: Dict[str, List[str]] = {}
        self.entries: List[RouteEntry] = []
        self.conflicts: List[Conflict] = []

    def add(
        self, service: str, instance_id: str, template: RouteTemplate, methods: Iterable[str], is_public: bool = False,
        prefix_segments: int = 0,
    ) -> bool:
        shape = template.shape
        wanted = sorted(set(methods)) or ["*"]
        for m in wanted:
            clashing = list(self._methods_by_shape.get(shape, [])) if m == "*" else [m, "*"]
            for other in clashing:
                idx = self._owners.get((shape, other))
                if idx is not None and self.entries[idx].service != service:
                    self.conflicts.append(Conflict(template.raw, m, self.entries[idx].service, service))
                    return False
        for m in wanted:
            idx = self._owners.get((shape, m))
            if idx is not None:
                entry = self.entries[idx]
                if instance_id not in entry.instance_ids:
                    entry.instance_ids.append(instance_id)
                # Public only while every instance says so (fail closed during a rollout).
                entry.is_public = entry.is_public and is_public
            else:
                self.entries.append(RouteEntry(service, template, () if m == "*" else (m,), [instance_id], is_public, prefix_segments))
                self._owners[(shape, m)] = len(self.entries) - 1
                self._methods_by_shape.setdefault(shape, []).append(m)
        return True

    def build(self, index: int = 0) -> RouteTable:
        return RouteTable([RouteEntry(e.service, e.template, e.methods, list(e.instance_ids), e.is_public, e.prefix_segments) for e in self.entries],
                          self.conflicts, index)
