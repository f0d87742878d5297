"""Course data: the inventory's `data:`, what is sent (only what changed), the seats' read-only mount, and the
host's side of a transfer, run here on a folder as it would run on a host."""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from fleet import coursedata, desired, facts, filesync, inventory, report
from fleet.errors import HostError, InputError
from fleet.plan import teardown
from fleet.seats import expand
from fleet.steps import Run, SendFiles
from tests.unit.conftest import load_error

BASE = """\
name: lab
hosts: [192.0.2.10]
services:
  - {name: nb, seats: 2}
"""


@pytest.fixture
def datasets(tmp_path: Path) -> Path:
    d = tmp_path / "datasets"
    (d / "sub").mkdir(parents=True)
    (d / "a.csv").write_text("x,y\n1,2\n")
    (d / "sub" / "b.bin").write_bytes(bytes(range(256)) * 5)
    (d / "link").symlink_to("/etc/passwd")  # left out: it could point anywhere on the host
    return d


def test_fleet_wide_data_mounts_inside_each_seats_work_folder_by_default(write, datasets):
    inv = inventory.load(write(BASE + "  - {name: r, kind: rstudio}\ndata: {src: datasets}\n"))
    nb, r = inv.services
    assert coursedata.mount_of(inv, nb) == ("/var/lib/fleet/lab/data/fleet", "/home/jovyan/data")
    assert coursedata.mount_of(inv, r) == ("/var/lib/fleet/lab/data/fleet", "/home/rstudio/data")
    assert coursedata.inside_work(inv, nb) == "data"
    (ds,) = coursedata.datasets(inv)  # one folder, sent once per host, whatever the number of services
    assert (ds.key, ds.source, ds.field) == ("fleet", datasets, "data.src")


def test_a_services_own_data_wins_for_it(write, datasets, tmp_path):
    (tmp_path / "r-data").mkdir()
    inv = inventory.load(write(BASE + "  - {name: r, kind: rstudio, data: {src: r-data, mount: /srv/course}}\n"
                                      "data: {src: datasets, mount: /home/jovyan/course}\n"))
    nb, r = inv.services
    assert coursedata.mount_of(inv, nb) == ("/var/lib/fleet/lab/data/fleet", "/home/jovyan/course")
    assert coursedata.mount_of(inv, r) == ("/var/lib/fleet/lab/data/r", "/srv/course")
    assert coursedata.inside_work(inv, r) is None
    assert [d.key for d in coursedata.datasets(inv)] == ["fleet", "r"]


@pytest.mark.parametrize("extra,line,field,words", [
    ("data: {src: nowhere}\n", 5, "data.src", "'nowhere' does not exist"),
    ("data: {src: datasets/a.csv}\n", 5, "data.src", "is not a folder"),
    ("data: {src: datasets, mount: /home/jovyan}\n", 5, "services[0].data.mount", "would hide the students' files"),
    ("data: {src: datasets, mount: /home}\n", 5, "services[0].data.mount", "mount the data inside it, e.g. /home/jovyan/data"),
    ("data: {src: datasets, mount: data}\n", 5, "data.mount", "not a folder inside the container"),
    ("data: {src: datasets, mount: '/home/jovyan/my data'}\n", 5, "data.mount", "absolute path"),
    ("data: {src: datasets, mount: /home/x:/y}\n", 5, "data.mount", "absolute path"),
    ("data: {src: datasets, mount: /home/jovyan/../../etc}\n", 5, "data.mount", "absolute path"),
    ("data: {src: ''}\n", 5, "data.src", ""),
    ("data: {src: datasets, mode: ro}\n", 5, "data.mode", "unknown field"),
])
def test_data_errors_name_line_and_field(write, datasets, extra, line, field, words):
    e = load_error(write, BASE + extra)
    assert (e.line, e.field) == (line, field), str(e)
    assert words in str(e)


def test_a_generic_service_without_workdir_needs_a_mount(write, datasets):
    e = load_error(write, BASE + "  - {name: g, kind: generic, image: x, port: 80, secret_env: T}\n"
                                 "data: {src: datasets}\n")
    assert (e.line, e.field) == (6, "services[1].data.mount") and "has no `workdir:`" in str(e)


def test_a_service_called_fleet_with_its_own_data_beside_the_fleets(write, datasets):
    e = load_error(write, BASE + "  - {name: fleet, data: {src: datasets}}\ndata: {src: datasets}\n")
    assert e.field == "services[1].data" and "rename the service" in str(e)


def test_hub_mode_refuses_data_spares_and_groups(write, datasets):
    e = load_error(write, "name: lab\nmode: hub\nhosts: [192.0.2.10]\ndata: {src: datasets}\n"
                          "services:\n  - {name: nb, spares: 1}\n")
    assert "data, spares work in mode: seats only" in str(e)


# --- this computer's files ---------------------------------------------------------------


def test_scan_hashes_regular_files_only(datasets):
    found = filesync.scan(datasets)
    assert sorted(found) == ["a.csv", "sub/b.bin"]
    assert found["a.csv"] == (hashlib.sha256(b"x,y\n1,2\n").hexdigest(), 8)
    assert found["sub/b.bin"][1] == 1280 and len(found["sub/b.bin"][0]) == 64


def test_scan_refuses_names_that_cannot_travel(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "bad\nname").write_text("x")
    with pytest.raises(InputError, match="control character") as e:
        filesync.scan(tmp_path / "d", file="lab.yml", field="data.src")
    assert (e.value.file, e.value.field) == ("lab.yml", "data.src")


def test_only_changed_and_new_files_are_sent_and_gone_ones_removed():
    local = {"a": ("h1", 1), "b": ("h2", 2), "c": ("h3", 3)}
    remote = {"a": ("h1", 1), "b": ("old", 2), "z": ("h9", 9)}
    assert coursedata.changes(local, remote) == ([("b", 2), ("c", 3)], ["z"])
    assert coursedata.changes(local, local) == ([], [])


def test_manifest_is_one_ascii_line_and_reads_back():
    files = {"b.csv": ("ab" * 32, 3), "é/ü\u2028.txt": ("cd" * 32, 0)}
    text = coursedata.manifest_bytes(files)
    assert text.count(b"\n") == 1 and text.isascii()
    assert coursedata.parse_manifest(text.decode()) == files
    assert coursedata.parse_manifest("garbage") is None and coursedata.parse_manifest('{"files": 3}') is None


def test_the_probe_reads_the_hosts_manifests():
    out = ("--- data\nmanifest fleet.manifest\n" + coursedata.manifest_bytes({"a": ("x" * 64, 1)}).decode()
           + "\nmanifest nb.manifest\n{\"files\":{}}\n\n--- end\n")
    assert facts.parse(out).data == {"fleet": '{"files":{"a":["' + "x" * 64 + '",1]}}', "nb": '{"files":{}}'}
    assert "/var/lib/fleet/$fleet/data/" in facts.PROBE


# --- the plan --------------------------------------------------------------------------------


def sync(inv, on_host, local):
    return coursedata.sync_steps(inv, on_host, local)


def test_plan_sends_everything_the_first_time_then_only_what_changed_then_nothing(write, datasets):
    inv = inventory.load(write(BASE + "data: {src: datasets}\n"))
    local = {"fleet": filesync.scan(datasets)}
    (first,) = sync(inv, {}, local)
    assert isinstance(first, SendFiles) and first.folder == "/var/lib/fleet/lab/data/fleet"
    assert [p for p, _ in first.send] == ["a.csv", "sub/b.bin"] and first.remove == ()
    assert first.manifest_path == "/var/lib/fleet/lab/data/fleet.manifest"
    assert first.title == f"send course data datasets to {first.folder}: 2 files (1.3 kB)"
    on_host = {"fleet": first.manifest.decode()}
    assert sync(inv, on_host, local) == []  # a re-run: no step
    (datasets / "a.csv").write_text("x,y\n1,3\n")
    (datasets / "sub" / "b.bin").unlink()
    (datasets / "new.txt").write_text("new")
    (second,) = sync(inv, on_host, {"fleet": filesync.scan(datasets)})
    assert second.send == (("a.csv", 8), ("new.txt", 3)) and second.remove == ("sub/b.bin",)
    assert "2 new or changed files (11 bytes), 1 removed" in second.title
    assert sync(inv, {"fleet": "damaged"}, local)[0].send == first.send  # a manifest fleet did not write: all again


def test_a_content_change_replaces_no_seat_but_adding_data_does(write, datasets):
    plain = inventory.load(write(BASE))
    inv = inventory.load(write(BASE + "data: {src: datasets}\n"))
    secrets = {s.container: "s" * 32 for s in expand(inv)}
    before = desired.for_host(plain, plain.hosts[0], secrets)
    with_data = desired.for_host(inv, inv.hosts[0], secrets)
    assert [w.spec for w in before] != [w.spec for w in with_data]  # adding data: replaced once
    run = with_data[0].run
    assert run[run.index("/var/lib/fleet/lab/data/fleet:/home/jovyan/data:ro") - 1] == "--volume"
    (datasets / "a.csv").write_text("changed")
    assert [w.spec for w in desired.for_host(inv, inv.hosts[0], secrets)] == [w.spec for w in with_data]


def test_a_folder_no_longer_named_is_removed_and_teardown_removes_all(write, datasets):
    inv = inventory.load(write(BASE))
    (step,) = coursedata.unused_steps(inv, {"fleet": "{}"})
    assert isinstance(step, Run) and step.argv == ("rm", "-rf", "--", "/var/lib/fleet/lab/data/fleet",
                                                   "/var/lib/fleet/lab/data/fleet.manifest")
    assert coursedata.unused_steps(inventory.load(write(BASE + "data: {src: datasets}\n")), {"fleet": "{}"}) == []
    f = facts.parse("--- end\n")
    assert ("rm", "-rf", "--", "/var/lib/fleet/lab") in [s.argv for s in teardown(inv, f)]


def test_plan_listing_names_the_files(write, datasets):
    from fleet.report import HostReport
    from fleet.runner import Outcome

    inv = inventory.load(write(BASE + "data: {src: datasets}\n"))
    steps = sync(inv, {}, {"fleet": filesync.scan(datasets)})
    outcomes = [Outcome(inv.hosts[0], HostReport(inv.hosts[0], steps=steps))]
    assert "> /var/lib/fleet/lab/data/fleet: 2 file(s), 1288 bytes (a.csv, sub/b.bin)" in report.plan_text(outcomes)
    assert json.loads(json.dumps(report.plan_data(outcomes)))[0]["steps"][0]["files"] == ["a.csv", "sub/b.bin"]


# --- the transfer, as a host runs it --------------------------------------------------------------


def host_side(step: SendFiles) -> subprocess.CompletedProcess:
    """The host's script run here (as on a host, but on this computer's folders), fed the step's stdin."""
    data = b"".join(filesync.chunks(step))
    return subprocess.run(filesync.argv(step), input=data, capture_output=True, timeout=60)


def test_the_stream_is_a_tar_of_the_files_read_only_for_all(datasets):
    step = SendFiles("t", str(datasets), "/x", "/x.manifest", b"{}\n", (("a.csv", 8), ("sub/b.bin", 1280)))
    data = b"".join(filesync.chunks(step))
    assert data.startswith(b"{}\n")
    with tarfile.open(fileobj=io.BytesIO(data[3:])) as tar:
        members = tar.getmembers()
        assert [(m.name, m.size, m.mode, m.isfile()) for m in members] == [
            ("a.csv", 8, 0o644, True), ("sub/b.bin", 1280, 0o644, True)]
        assert tar.extractfile("sub/b.bin").read() == (datasets / "sub" / "b.bin").read_bytes()


def test_a_file_that_changed_size_since_it_was_hashed_stops_the_transfer(datasets):
    step = SendFiles("t", str(datasets), "/x", "/x.manifest", b"{}\n", (("a.csv", 5),))
    with pytest.raises(HostError, match="changed while it was sent"):
        b"".join(filesync.chunks(step))


def test_the_hosts_side_syncs_a_folder_and_writes_the_manifest_last(tmp_path, datasets, write):
    inv = inventory.load(write(BASE + "data: {src: datasets}\n"))
    target = tmp_path / "host" / "data" / "fleet"
    manifest = tmp_path / "host" / "data" / "fleet.manifest"

    def step_for(on_host):
        (s,) = sync(inv, on_host, {"fleet": filesync.scan(datasets)})
        return SendFiles(s.title, s.source, str(target), str(manifest), s.manifest, s.send, s.remove)

    first = step_for({})
    out = host_side(first)
    assert out.returncode == 0, out.stderr
    assert (target / "sub" / "b.bin").read_bytes() == (datasets / "sub" / "b.bin").read_bytes()
    assert oct((target / "a.csv").stat().st_mode & 0o777) == "0o644"
    assert oct(target.stat().st_mode & 0o777) == "0o755" and not (target / "link").exists()
    assert manifest.read_bytes() == first.manifest and not Path(str(manifest) + ".tmp").exists()
    (datasets / "sub" / "b.bin").unlink()
    (datasets / "sub").rmdir()
    (datasets / "sub").write_text("now a file where a folder was")
    second = step_for({"fleet": manifest.read_text()})
    assert second.remove == ("sub/b.bin",) and [p for p, _ in second.send] == ["sub"]
    out = host_side(second)
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(target)) == ["a.csv", "sub"] and (target / "sub").read_text().startswith("now a file")
    assert coursedata.parse_manifest(manifest.read_text()) == filesync.scan(datasets)


def test_a_transfer_cut_short_leaves_the_old_manifest(tmp_path, datasets):
    target, manifest = tmp_path / "d", tmp_path / "d.manifest"
    manifest.write_text("old\n")
    step = SendFiles("t", str(datasets), str(target), str(manifest), b'{"files":{}}\n', (("a.csv", 8),))
    data = b"".join(filesync.chunks(step))[:600]  # the connection broke in the middle of the tar stream
    out = subprocess.run(filesync.argv(step), input=data, capture_output=True, timeout=60)
    assert out.returncode != 0 and manifest.read_text() == "old\n"  # so the next run sends it again


def test_the_relays_receiver_syncs_the_folder_and_keeps_the_stream_for_the_next_host(tmp_path, datasets, write):
    from fleet import relayhost

    inv = inventory.load(write(BASE + "data: {src: datasets}\n"))
    (s,) = sync(inv, {}, {"fleet": filesync.scan(datasets)})
    target, manifest = tmp_path / "host" / "fleet", tmp_path / "host" / "fleet.manifest"
    step = SendFiles(s.title, s.source, str(target), str(manifest), s.manifest, s.send, s.remove)
    kept = tmp_path / "relay" / "x.tar"
    stream = b"".join(filesync.chunks(step))  # once: the tar headers carry the time they were made
    out = subprocess.run(relayhost.receive_files_argv(str(kept), step), input=stream, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (target / "sub" / "b.bin").read_bytes() == (datasets / "sub" / "b.bin").read_bytes()
    assert manifest.read_bytes() == step.manifest
    assert kept.read_bytes() == stream  # what the next host reads, byte for byte
    assert (kept.parent / "x.tar.end").read_text().strip() == "0"
    same = SendFiles("other title", s.source, str(target), str(manifest), s.manifest, s.send, s.remove)
    assert relayhost.files_key(same) == relayhost.files_key(step)  # hosts that need the same stream share one
    other = SendFiles(s.title, s.source, str(target), str(manifest), s.manifest, s.send[:1], s.remove)
    assert relayhost.files_key(other) != relayhost.files_key(step)
