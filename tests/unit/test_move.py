"""fab move's decisions (which spare) and the packing shared with collect, which leaves the course data out."""
from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from fleet import classroom, inventory, move, placement
from fleet.errors import InputError

INVENTORY = """\
name: lab
hosts: [192.0.2.10, 192.0.2.11, 192.0.2.12]
services:
  - {name: nb, seats: 2, spares: 1}
  - {name: r, kind: rstudio, spares: 1}
"""


@pytest.fixture
def order(write):
    return placement.seats_in_order(inventory.load(write(INVENTORY)))


def at(order, host, container):
    return next((h, s) for h, s in order if h.id == host and s.container == container)


def test_a_free_spare_of_the_same_service_on_the_least_loaded_other_host(order):
    old = at(order, "192.0.2.10", "lab-nb-1")
    occupied = {("192.0.2.10", "lab-nb-1"), ("192.0.2.11", "lab-nb-1"), ("192.0.2.11", "lab-nb-2"),
                ("192.0.2.12", "lab-nb-1")}
    host, seat = move.pick_spare(order, occupied, old, "spare")
    assert (host.id, seat.container, seat.spare) == ("192.0.2.12", "lab-nb-3", True)
    occupied.add(("192.0.2.12", "lab-nb-3"))  # taken: the next one goes to the other host's
    host, seat = move.pick_spare(order, occupied, old, "SPARE")
    assert (host.id, seat.container) == ("192.0.2.11", "lab-nb-3")


def test_no_spare_on_another_host_says_what_to_do(order):
    old = at(order, "192.0.2.10", "lab-nb-1")
    occupied = {("192.0.2.11", "lab-nb-3"), ("192.0.2.12", "lab-nb-3")}
    with pytest.raises(InputError, match="no free spare of service nb on a host other than 192.0.2.10 .3 spares"):
        move.pick_spare(order, occupied, old, "spare")


@pytest.mark.parametrize("to,words", [
    ("192.0.2.11/nb-1", "is not a spare seat"),
    ("192.0.2.11/r-2", "is a spare of service r, not nb"),
    ("192.0.2.12/lab-nb-3", "is not free"),
    ("192.0.2.99/nb-3", "no seat is called"),
])
def test_a_named_spare_must_be_a_free_spare_of_the_service(order, to, words):
    old = at(order, "192.0.2.10", "lab-nb-1")
    with pytest.raises(InputError, match=words):
        move.pick_spare(order, {("192.0.2.12", "lab-nb-3")}, old, to)


def test_a_named_spare_may_be_on_the_same_host(order):
    old = at(order, "192.0.2.10", "lab-nb-1")
    host, seat = move.pick_spare(order, set(), old, "192.0.2.10/nb-3")
    assert (host.id, seat.container) == ("192.0.2.10", "lab-nb-3")


def test_occupied_counts_students_held_and_vacated_seats():
    data = {"roster": {"ada": {"name": "Ada", "host": "h2", "container": "c-3"}},
            "vacated": [{"name": "Ada", "host": "h1", "container": "c-1"}]}
    assert move.occupied_seats(data) == {("h2", "c-3"), ("h1", "c-1")}


def pack(folder: Path, script: str, *args: str) -> tuple[list[str], str]:
    out = subprocess.run(["sh", "-c", script, "sh", *args], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        return sorted(m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()), out.stderr.decode()


def test_collect_and_move_leave_the_course_data_out(tmp_path):
    work = tmp_path / "home"
    (work / "data" / "deep").mkdir(parents=True)
    (work / "data" / "deep" / "big.csv").write_text("teacher's")
    (work / "data.txt").write_text("the student's own, beside the data folder")
    (work / "nb" / "data").mkdir(parents=True)
    (work / "nb" / "data" / "mine.csv").write_text("a student's folder called data, deeper down")
    (work / "huge.bin").write_bytes(b"x" * 3000)
    files, err = pack(work, classroom.PACK_WORK, str(work), "1", "data")
    assert files == ["data.txt", "nb/data/mine.csv"] and "too large: ./huge.bin" in err
    files, _ = pack(work, classroom.PACK_WORK, str(work), "10")  # no course data: everything
    assert files == ["data.txt", "data/deep/big.csv", "huge.bin", "nb/data/mine.csv"]


def test_move_packs_the_volume_on_the_host_whatever_its_container_does():
    assert "docker volume inspect --format '{{.Mountpoint}}' \"$vol\"" in classroom.PACK_VOLUME
    assert classroom.PACK_VOLUME.endswith(classroom.PACK_WORK)
