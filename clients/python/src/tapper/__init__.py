"""Tapper client for FastAPI: announce a service to a Tapper registry while it runs, and (with
``TapperGateway``) route requests to the services of a registry from inside a Python app.

    from fastapi import FastAPI
    from tapper import Service

    app = Service(name="user-service", version="1.0.0")(FastAPI())
"""

from . import registry
from ._names import default_instance_id
from ._registry import RegistryClient, RegistryError, RegistryUnavailable
from ._routes import public
from ._service import Service
from .balancing import LoadBalancer, ServiceInstance
from ._gateway import TapperGateway

__version__ = "0.1.0"
__all__ = [
    "Service", "public", "TapperGateway", "LoadBalancer", "ServiceInstance", "registry", "RegistryClient", "RegistryError",
    "RegistryUnavailable", "default_instance_id", "__version__",
]
