"""Tapper client for FastAPI: announce a service to a Tapper registry while it runs.

    from fastapi import FastAPI
    from tapper import Service

    app = Service(name="user-service", version="1.0.0")(FastAPI())
"""

from ._names import default_instance_id
from ._registry import RegistryClient, RegistryError, RegistryUnavailable
from ._routes import public
from ._service import Service

__version__ = "0.1.0"
__all__ = ["Service", "public", "RegistryClient", "RegistryError", "RegistryUnavailable", "default_instance_id", "__version__"]
