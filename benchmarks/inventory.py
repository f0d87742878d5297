"""pyinfra inventory of the benchmark (hosts and SSH settings from $BENCH_JOB, written by benchmarks/tools.py)."""
import json
import os

_job = json.load(open(os.environ["BENCH_JOB"]))  # noqa: SIM115 - read once at import, as pyinfra loads inventories
seats = [(address, {"ssh_user": "root", "ssh_key": _job["key"], "ssh_known_hosts_file": _job["known_hosts"],
                    "ssh_strict_host_key_checking": "yes"}) for address in _job["hosts"]]
