"""Local validation that mirrors the registry's rules, so mistakes fail early and clearly."""

from __future__ import annotations

import re
import urllib.parse
from typing import Tuple

SERVICE_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
INSTANCE_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}", re.ASCII)
_HOST_RE = re.compile(r"[A-Za-z0-9._-]+", re.ASCII)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def validate_service_name(name: object) -> str:
    if not isinstance(name, str):
        raise ValueError(f"tapper: service name must be a string, got {type(name).__name__}")
    if not SERVICE_NAME_RE.fullmatch(name):
        raise ValueError(
            f"tapper: invalid service name {name!r}: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (a DNS label), e.g. 'user-service'"
        )
    return name


def validate_instance_id(instance_id: object) -> str:
    if not isinstance(instance_id, str) or not INSTANCE_ID_RE.fullmatch(instance_id):
        raise ValueError(
            f"tapper: invalid instance id {instance_id!r}: use 1-128 letters, digits, '.', '_', ':' or '-'"
        )
    return instance_id


def check_text(value: object, what: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"tapper: {what} must be a string, got {type(value).__name__}")
    if _CONTROL_RE.search(value):
        raise ValueError(f"tapper: {what} must not contain control characters such as CR or LF")
    if len(value.encode("utf-8")) > max_length:
        raise ValueError(f"tapper: {what} must be at most {max_length} bytes long")
    return value


def normalize_prefix(prefix: object) -> str:
    """'' stays ''; 'api', '/api/' and '/api' all become '/api'; '/' becomes ''."""
    if prefix is None:
        return ""
    check_text(prefix, "prefix", 512)
    assert isinstance(prefix, str)
    p = prefix.strip()
    if not p:
        return ""
    if not p.startswith("/"):
        p = "/" + p
    p = p.rstrip("/")
    if "{" in p or "}" in p:
        raise ValueError(f"tapper: prefix {prefix!r} must not contain path parameters")
    if "//" in p or any(c in p for c in " ?#\\"):
        raise ValueError(f"tapper: prefix {prefix!r} must be a plain path such as '/api'")
    return p


def normalize_url(url: str, what: str = "url") -> str:
    """Checks that `url` is an http(s) origin (what the registry accepts) and strips a trailing '/'."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"tapper: {what} must be a non-empty string like http://127.0.0.1:8002")
    if _CONTROL_RE.search(url) or " " in url:
        raise ValueError(f"tapper: {what} {url!r} must not contain spaces or control characters")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"tapper: {what} {url!r} must be an http:// or https:// URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f"tapper: {what} {url!r} must be an origin like http://host:port without a path; "
            "use prefix= for public path prefixes"
        )
    if "@" in parts.netloc:
        raise ValueError(f"tapper: {what} {url!r} must not contain credentials")
    host = parts.hostname
    if not host:
        raise ValueError(f"tapper: {what} {url!r} must name a host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"tapper: {what} {url!r} has an invalid port (use 1-65535)") from None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"tapper: {what} {url!r} has an invalid port (use 1-65535)")
    if not parts.netloc.startswith("[") and not _HOST_RE.fullmatch(host):
        raise ValueError(f"tapper: {what} {url!r} has an invalid host name")
    return f"{parts.scheme.lower()}://{parts.netloc}"


def host_and_port(url: str) -> Tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port
    if port is None:
        port = 443 if parts.scheme.lower() == "https" else 80
    return host, port


def default_instance_id(url: str) -> str:
    """`{host}-{port}` with characters outside [A-Za-z0-9._-] replaced by '_', as the Swift CLI does.

    >>> default_instance_id("http://127.0.0.1:8002")
    '127.0.0.1-8002'
    >>> default_instance_id("http://[::1]:8002")
    '__1-8002'
    """
    host, port = host_and_port(url)
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", host.replace("[", "").replace("]", ""))
    return f"{cleaned}-{port}"
