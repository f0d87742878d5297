"""apply: the one place that carries out a host's Steps, over its one connection.

Steps run in the plan's order. Container steps (docker commands and the
files they need) go several to a round trip (Remote.apply_batch); installs,
which report their waits as they happen, go one at a time. Images the host
must receive start arriving at once, beside everything else (fleet/relay.py),
and the first step that runs a container waits for them. Course data
(SendFiles) goes through the same relay: out of this computer once, host to
host as it arrives.
"""
from __future__ import annotations

import threading

from fleet.events import Event
from fleet.inventory import Host
from fleet.relay import Relay
from fleet.ssh import Remote
from fleet.steps import PushImage, Run, SendFiles, Step, Upload

BATCHED = ("docker", "rm")  # commands that say nothing while they work: several go in one round trip


def apply_steps(relay: Relay, host: Host, remote: Remote, steps: list[Step], progress) -> None:  # noqa: ANN001
    """Run a host's steps in order; the images it must receive start arriving at once, beside the others.

    A fresh host installs Docker while the image is already on its way (the
    receiver waits for Docker before it loads). When one side fails, the
    other is stopped.
    """
    pushes = [s for s in steps if isinstance(s, PushImage)]
    cancel, failed = threading.Event(), []

    def receive() -> None:
        try:
            for step in pushes:
                relay.deliver(step, host, remote, cancel)  # says itself where the image comes from
        except BaseException as e:  # noqa: BLE001 - handed to the host's own thread below
            failed.append(e)

    background = threading.Thread(target=receive, name=f"fleet-image-{host.id}", daemon=True) if pushes else None

    def images_arrived() -> None:
        nonlocal background
        if background is not None:
            background.join()
            background = None
            if failed:
                raise failed[0]

    if background is not None:
        background.start()
    try:
        for group in batches([s for s in steps if not isinstance(s, PushImage)]):
            if any(needs_images(s) for s in group):
                images_arrived()
            for step in group:
                progress(Event(f"  {host.id}: {step.title}", "step", host=host.id, step=step.title))
            if len(group) == 1 and isinstance(group[0], SendFiles):  # course data: relayed like an image
                relay.deliver_files(group[0], host, remote)
            else:
                remote.apply_batch(group)
        images_arrived()
    except BaseException:
        cancel.set()
        if background is not None:
            background.join()
        raise


def needs_images(step: Step) -> bool:
    """A step that starts something from an image (a container, a Swarm service)."""
    return isinstance(step, Run) and (step.argv[:2] == ("docker", "run") or step.argv[:3] in (
        ("docker", "service", "create"), ("docker", "service", "update")))


def batches(steps: list[Step]) -> list[list[Step]]:
    """Consecutive container steps (docker commands, files) together; installs, which report waits as they
    happen, each on its own."""
    out: list[list[Step]] = []
    for step in steps:
        if out and _batchable(step) and _batchable(out[-1][-1]):
            out[-1].append(step)
        else:
            out.append([step])
    return out


def _batchable(step: Step) -> bool:
    return isinstance(step, Upload) or (isinstance(step, Run) and step.argv[0] in BATCHED)


def started_containers(steps: list[Step]) -> bool:
    """Did these steps run or start a container (a seat's, or the proxy every seat is reached through)?"""
    return any(isinstance(s, Run) and s.argv[:2] in (("docker", "run"), ("docker", "start")) for s in steps)
