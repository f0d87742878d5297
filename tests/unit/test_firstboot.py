"""Docker at first boot: the droplet's user_data, made from the same steps fleet runs over SSH."""
from __future__ import annotations

import subprocess

import yaml

from fleet import firstboot
from fleet.cloud.digitalocean import USER_DATA_LIMIT, create_body
from fleet.steps import Run, Upload


def test_image_slugs_name_the_distribution_as_its_os_release_would():
    assert firstboot.os_release_of("ubuntu-24-04-x64") == {"ID": "ubuntu", "VERSION_ID": "24.04",
                                                           "VERSION_CODENAME": "noble"}
    assert firstboot.os_release_of("debian-12-x64")["VERSION_CODENAME"] == "bookworm"
    assert firstboot.os_release_of("rockylinux-9-x64") == {"ID": "rocky", "VERSION_ID": "9",
                                                           "ID_LIKE": "rhel centos fedora"}
    assert firstboot.os_release_of("fedora-42-x64")["ID"] == "fedora"
    for unknown in (123456, "ubuntu-30-04-x64", "freebsd-14-x64", "debian-12-arm64"):
        assert firstboot.os_release_of(unknown) is None
        assert firstboot.user_data(unknown, "official") is None  # SSH installs Docker there, as on any server


def test_user_data_is_cloud_config_that_writes_and_runs_the_install_script():
    text = firstboot.user_data("debian-12-x64", "distro")
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    (written,) = doc["write_files"]
    assert written["path"] == firstboot.SCRIPT_PATH and written["permissions"] == "0700"
    assert written["content"] == firstboot.script(firstboot.steps_for("debian-12-x64", "distro"))
    assert doc["runcmd"] == [["sh", firstboot.SCRIPT_PATH]]
    assert "install docker.io" in written["content"]
    assert "cloud-init status --wait" not in written["content"]  # it runs inside cloud-init: waiting would hang
    for slug, source in (("ubuntu-24-04-x64", "official"), ("rockylinux-9-x64", "official"),
                         ("debian-13-x64", "distro")):
        data = firstboot.user_data(slug, source)
        assert len(data.encode()) < USER_DATA_LIMIT
        assert create_body(["lab-01"], region="ams3", size="s", image=slug, ssh_keys=[1], tags=["t"],
                           user_data=data)["user_data"] == data


def test_the_script_stops_at_the_first_failure_and_records_it(tmp_path, monkeypatch):
    status = tmp_path / "status"
    monkeypatch.setattr(firstboot, "STATUS", str(status))
    target = tmp_path / "etc" / "apt" / "docker.list"
    steps = [Upload("add the repository", str(target), b"deb [x] https://example/ bookworm stable\n", 0o644),
             Run("break", ("sh", "-c", "exit 7")), Run("never", ("touch", str(tmp_path / "never")))]
    out = subprocess.run(["sh", "-c", firstboot.script(steps)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 7
    assert target.read_bytes() == b"deb [x] https://example/ bookworm stable\n"
    assert status.read_text() == "failed: break (exit 7)\n"
    assert not (tmp_path / "never").exists()
    ok = subprocess.run(["sh", "-c", firstboot.script([Run("fine", ("true",))])], capture_output=True, timeout=30)
    assert ok.returncode == 0 and status.read_text() == "ok\n"
