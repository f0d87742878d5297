"""Every docker (and swarm) command line fleet runs, as argv lists, tested as plain data.

Nothing here runs anything or builds a shell string: plans hold these argv
lists and the SSH edge (fleet/ssh.py) quotes each once with ``shlex.join``.
One module per kind of thing, as Kamal's commands/ has them: containers,
images, networks, files (and volumes), swarm. Fixed shell scripts that call
docker among other things (the fact probe, the readiness check, the image
relay's receiver) stay beside the code that reads their output.
"""
from fleet.commands.containers import (
    docker_run,
    exec_in,
    logs,
    remove,
    run_once,
    seat_args,
    seat_labels,
    start,
)
from fleet.commands.files import remove_files, remove_tree, volume_remove
from fleet.commands.images import inspect_local, load, pull, save
from fleet.commands.networks import network_create, network_remove

__all__ = ["docker_run", "exec_in", "inspect_local", "load", "logs", "network_create", "network_remove", "pull",
           "remove", "remove_files", "run_once", "remove_tree", "save", "seat_args", "seat_labels", "start", "volume_remove"]
