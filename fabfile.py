"""fleet: science servers for a classroom. Every task takes --hosts INVENTORY.yml.

The collection is defined in tasks/ (``tasks.ns``); the installed ``fleet``
command runs the same one.
"""
from tasks import ns  # noqa: F401  (fab loads `ns` from this module)
