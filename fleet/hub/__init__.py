"""mode: hub — JupyterHub on Docker Swarm: the pure pieces (settings, config, accounts, the hub's own modules,
what a node is and what it needs). The backend that runs them is fleet/backends/hub.py."""
