"""A local, stateful stand-in for DigitalOcean's API v2, held to DigitalOcean's own specification.

See server.py (the service), contract.py (validation with openapi-core
against openapi-droplets.yaml), machines.py (each droplet is a real test host
container) and catalog.py (regions, sizes and prices; every image slug boots
the local Debian 12 test host image).
"""
from tests.standin.server import Fault, StandIn

__all__ = ["Fault", "StandIn"]
