"""The benchmark's job for pyinfra (the same as fleet's and Ansible's; see benchmarks/tools.py).

pyinfra's docker.container takes memory and CPU limits, env files, ports and
networks; the swap cap goes in extra_args. pyinfra has no operation that
loads an image archive, so a guarded server.shell does (it runs every time,
doing nothing when the image is there). Note: docker.container never replaces
a container whose spec changed (pyinfra 3.x's diff_from_inspect returns no
changes), where fleet and community.docker do.
"""
import io
import json
import os

from pyinfra.operations import apt, docker, files, server, systemd

job = json.load(open(os.environ["BENCH_JOB"]))  # noqa: SIM115
p, image = job["prefix"], job["image"]
archive = f"/var/tmp/{p}-image.tar"

apt.packages(name="Docker from the distribution's packages", packages=["docker.io"], update=True, cache_time=86400)
systemd.service(name="Docker running", service="docker", running=True, enabled=True)
files.put(name="Image archive from this computer", src=job["archive"], dest=archive, mode="600")
server.shell(name="Image loaded", commands=[f"docker image inspect {image} >/dev/null 2>&1 || docker load -q -i {archive}"])
files.directory(name="Env file directory", path=f"/etc/{p}", mode="700")
for seat in job["seats"]:
    files.put(name=f"Env file {seat['n']}", src=io.StringIO(f"{job['token_env']}={seat['token']}\n"),
              dest=f"/etc/{p}/{p}-nb-{seat['n']}.env", mode="600")
docker.network(name="Seat network", network=f"{p}-seats", present=True)
for seat in job["seats"]:
    name = f"{p}-nb-{seat['n']}"
    docker.container(name=f"Seat {name}", container=name, image=image, ports=[f"{seat['port']}:8888"],
                     networks=[f"{p}-seats"], env_files=[f"/etc/{p}/{name}.env"], cpus=job["cpus"],
                     memory=job["memory"], extra_args=["--memory-swap", job["memory"]],
                     restart_policy="unless-stopped", labels=[f"bench.tool={p}"], present=True, start=True)
