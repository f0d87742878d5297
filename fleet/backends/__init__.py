"""Backends: how the students are served, chosen by the inventory's ``mode:``.

- ``seats`` (fleet/backends/seats.py): fixed containers per host, one per
  student seat, each behind the host's TLS proxy.
- ``hub`` (fleet/backends/hub.py): JupyterHub on Docker Swarm, the whole class
  at one address.

A backend decides what to probe, plans and applies per host, and says what
status and teardown mean; it shares the fan-out, SSH, the state, the TLS
proxy, the image relay and the handout with the others. The workflow
(fleet/converge.py) rents servers, opens the relay and hands a backend a
:class:`Provisioning`.

Adding a backend: a module here with the three functions of :class:`Backend`
and one entry in fleet/backends/registry.py.
"""
