"""A small blocking client of the registry's v1 API (urllib only). Call it from a worker thread."""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Optional, Tuple


class RegistryUnavailable(Exception):
    """The registry could not be reached (refused, timed out, DNS, garbled answer)."""


class RegistryError(Exception):
    """The registry answered with an error status."""

    def __init__(self, status: int, code: str, message: str, field: Optional[str] = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        detail = f"{message} (field: {field})" if field else message
        super().__init__(f"HTTP {status} {code}: {detail}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RegistryClient:
    def __init__(self, base_url: str, token: Optional[str] = None, timeout: float = 3.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"tapper: registry URL {base_url!r} must look like http://127.0.0.1:8001")
        self.base_url = base_url.rstrip("/")
        self.token = token or None
        self.timeout = timeout
        handlers = []
        if _is_loopback(parts.hostname or ""):
            # Never send loopback traffic through an HTTP proxy from the environment.
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    def _path(self, service: str, instance_id: str, suffix: str = "") -> str:
        q = urllib.parse.quote
        return f"/v1/services/{q(service, safe='')}/instances/{q(instance_id, safe='')}{suffix}"

    def request(
        self, method: str, path: str, body: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None
    ) -> Tuple[int, Any]:
        data = None
        headers = {"Accept": "application/json", "User-Agent": "tapper-python"}
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with self._opener.open(req, timeout=self.timeout if timeout is None else timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status = e.code
            try:
                raw = e.read()
            except Exception:
                raw = b""
            finally:
                e.close()
        except (urllib.error.URLError, OSError, ValueError) as e:  # refused, timeout, reset, bad URL
            raise RegistryUnavailable(str(getattr(e, "reason", None) or e)) from None
        except Exception as e:  # http.client.RemoteDisconnected, BadStatusLine, ...
            raise RegistryUnavailable(f"{type(e).__name__}: {e}") from None
        payload: Any = None
        if raw:
            try:
                payload = json.loads(raw.decode("utf-8"))
            except ValueError:
                payload = None
        return status, payload

    @staticmethod
    def _error(status: int, payload: Any) -> RegistryError:
        err = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(err, dict):
            return RegistryError(status, str(err.get("code", "error")), str(err.get("message", "")), err.get("field"))
        return RegistryError(status, "error", "unexpected answer from the registry")

    def register(self, service: str, instance_id: str, body: Dict[str, Any]) -> Tuple[bool, Any]:
        """Registers or updates; returns (created, stored record)."""
        status, payload = self.request("PUT", self._path(service, instance_id), body)
        if status in (200, 201):
            return status == 201, payload
        raise self._error(status, payload)

    def heartbeat(self, service: str, instance_id: str) -> bool:
        """True when the registry knows the instance; False (404) means: register again."""
        status, payload = self.request("PUT", self._path(service, instance_id, "/heartbeat"))
        if status == 200:
            return True
        if status == 404:
            return False
        raise self._error(status, payload)

    def deregister(self, service: str, instance_id: str) -> bool:
        """True when removed, False when the registry did not know it."""
        status, payload = self.request("DELETE", self._path(service, instance_id))
        if status in (200, 204):
            return True
        if status == 404:
            return False
        raise self._error(status, payload)


def check_registry_url(url: str) -> str:
    """The registry URL may carry a path (a registry behind a reverse proxy); the service URL may not."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"tapper: registry URL {url!r} must look like http://127.0.0.1:8001")
    return url.strip().rstrip("/")


__all__ = ["RegistryClient", "RegistryError", "RegistryUnavailable", "check_registry_url"]
