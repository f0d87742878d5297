"""The ``services:`` section: what runs in the seats, and how many of them.

A service's kind (fleet/kinds.py) supplies its port, secret variable, files
folder and readiness check; the inventory may override some of them. Sizes
and CPU sets use Docker's own syntax, so what the teacher writes is what
``docker run`` gets; env values are text, one line each, because they end up
in a Docker env file. Seat ports are checked across services here too: each
seat of each service gets its own host port.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fleet.inventory.base import Model, Path_, Problems, check_image, check_user
from fleet.kinds import KINDS, Kind, Ready

SERVICE_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmg]?)(?:i?b)?$", re.IGNORECASE)
CPUSET_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """'512m', '2g', '1.5GiB' → bytes (Docker's units: powers of 1024)."""
    m = MEMORY_RE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a size; write a number with a unit, e.g. 512m or 2g")
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


def parse_memory(text: str) -> int:
    """A container's memory limit: a size, at least Docker's minimum."""
    value = parse_size(text)
    if value < 6 * 1024**2:
        raise ValueError(f"{text!r} is below Docker's minimum of 6m")
    return value


def parse_cpuset(text: str) -> tuple[int, ...]:
    """'0-1,4' → (0, 1, 4); the CPU list syntax of ``docker run --cpuset-cpus``."""
    if not CPUSET_RE.match(text):
        raise ValueError(f"{text!r} is not a CPU set; write CPU numbers and ranges, e.g. \"0-1\" or \"0,2\"")
    cpus: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        first, last = int(lo), int(hi or lo)
        if last < first:
            raise ValueError(f"range {part!r} runs backwards; write it as {last}-{first}")
        cpus.update(range(first, last + 1))
    return tuple(sorted(cpus))


NO_LIMIT = "none"  # `memory: none`, `cpus: none`: this service's seats get no such limit
MOUNT_RE = re.compile(r"^(/[A-Za-z0-9._@+-]+)+$")  # a folder in the container: no spaces, `:` or `,` reach docker run
GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,39}$")
FLEET_DATA = "fleet"  # the host's folder of the fleet-wide `data:` (a service's own is named after it)
DATA_FOLDER = "data"  # where course data is mounted, inside the seat's work folder, unless `mount:` says


def no_limit(v: Any) -> Any:
    """`none` (any case) → None: no such limit."""
    return None if isinstance(v, str) and v.strip().lower() == NO_LIMIT else v


def checked_memory(v: str | None) -> str | None:
    """A service's or a group's ``memory:`` as written, once it is known to be a size Docker takes."""
    if v is not None:
        parse_memory(v)
    return v


def group_key(name: str) -> str:
    """The identity of a group name: `Instructor` and `instructor ` are one group."""
    return " ".join(name.casefold().split())


class DataSettings(Model):
    """Course data: a folder of this computer (relative to the inventory), sent once to each host and mounted
    read-only into every seat at ``mount`` (default: ``data`` in the seat's work folder)."""

    src: str = Field(min_length=1)
    mount: str | None = None

    @field_validator("mount")
    @classmethod
    def _mount(cls, v: str | None) -> str | None:
        if v is None:
            return v
        text = v.rstrip("/") if v != "/" else v
        parts = text.split("/")[1:]
        if not MOUNT_RE.match(text) or any(p in (".", "..") for p in parts):
            raise ValueError(f"{v!r} is not a folder inside the container; write an absolute path of letters, "
                             "digits and . _ - @ +, e.g. /home/jovyan/data")
        return text


class GroupLimits(Model):
    """A roster group's own limits on the seats its students sit at (left out: the service's)."""

    memory: str | None = None
    cpus: float | None = Field(None, gt=0, le=1024)

    _no_limit = field_validator("memory", "cpus", mode="before")(lambda v: no_limit(v))

    _memory = field_validator("memory")(lambda v: checked_memory(v))


class Service(Model):
    """One service of the inventory. Left out, ``image``, ``port``, ``publish``, ``memory`` and ``cpus`` come
    from the kind and the other services (fleet/inventory/defaults.py fills them in once the file is valid);
    ``memory: none`` / ``cpus: none`` (or null) ask for no limit."""

    name: str
    kind: Literal["jupyter", "rstudio", "generic"] = "jupyter"
    image: str | None = None  # default per kind (generic: required)
    port: int | None = Field(None, ge=1, le=65535)  # default per kind (generic: required)
    publish: int | None = Field(None, ge=1, le=65535)  # default: the first free block of ports from 8000
    seats: int = Field(1, ge=1, le=500)
    spares: int = Field(0, ge=0, le=100)  # extra seats per host, numbered after the others, held for `fab move`
    memory: str | None = None  # default per kind
    cpus: float | None = Field(None, gt=0, le=1024)  # default per kind, unless a cpuset is given
    cpuset: str | None = None
    env: dict[str, str] = {}
    push: bool = False
    secret_env: str | None = None
    workdir: str | None = None  # the students' files (a volume per seat); default per kind
    user: str | None = None  # who owns them inside the container; default per kind
    health: str | None = None  # the path that answers 200-399 once the seat is up; default per kind
    ready_timeout: int | None = Field(None, ge=1, le=3600)  # seconds a new seat gets to answer; default per kind
    data: DataSettings | None = None  # course data for this service's seats (instead of the fleet's `data:`)
    groups: dict[str, GroupLimits] = {}  # a roster group's own memory/cpus on the seats of its students

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not SERVICE_RE.match(v):
            raise ValueError(f"{v!r} is not a service name (lower-case letters, digits and -, starting with a letter)")
        return v

    _image = field_validator("image")(lambda v: v if v is None else check_image(v))

    _no_limit = field_validator("memory", "cpus", mode="before")(lambda v: no_limit(v))

    @field_validator("groups", mode="before")
    @classmethod
    def _groups(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        seen: dict[str, str] = {}
        for name in v:
            if not isinstance(name, str) or not GROUP_RE.match(name):
                raise ValueError(f"{name!r} is not a group name (letters, digits, spaces, _ . -; as in the roster's "
                                 "`group` column)")
            if group_key(name) in seen:
                raise ValueError(f"group {name!r} is given twice (also as {seen[group_key(name)]!r})")
            seen[group_key(name)] = name
        return v

    _memory = field_validator("memory")(lambda v: checked_memory(v))

    @field_validator("cpuset")
    @classmethod
    def _cpuset(cls, v: str | None) -> str | None:
        if v is not None:
            parse_cpuset(v)
        return v

    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        for key, value in v.items():
            if not isinstance(key, str) or not ENV_KEY_RE.match(key):
                raise ValueError(f"{key!r} is not an environment variable name (letters, digits, _)")
            if not isinstance(value, str):
                raise ValueError(f"{key}: a value must be text, not a {type(value).__name__}; write it on one line")
            if isinstance(value, str) and ("\n" in value or "\r" in value or "\0" in value):
                raise ValueError(f"{key}: a value cannot hold a line break or NUL (Docker env files are one line per variable)")
            if any(unicodedata.category(ch) in ("Cc", "Cs") and ch != "\t" for ch in value):
                raise ValueError(f"{key}: a value cannot hold control characters or broken Unicode "
                                 "(Docker env files are UTF-8 text)")
        return v

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith("/") or ":" in v or "\n" in v or v.rstrip("/") == ""):
            raise ValueError(f"{v!r} is not an absolute folder inside the container, e.g. /home/jovyan/work")
        return v

    _user = field_validator("user")(lambda v: check_user(v) if v else v)

    @field_validator("health")
    @classmethod
    def _health(cls, v: str | None) -> str | None:
        if v is not None and (not re.match(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$", v) or len(v) > 200):
            raise ValueError(f"{v!r} is not a URL path; write one starting with /, e.g. /healthz")
        return v

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, v: str | None) -> str | None:
        if v is not None and not ENV_KEY_RE.match(v):
            raise ValueError(f"{v!r} is not an environment variable name")
        return v

    @model_validator(mode="after")
    def _kind_rules(self) -> Service:
        default_port, default_secret = KINDS[self.kind].port, KINDS[self.kind].secret_env
        if self.image is None and KINDS[self.kind].image is None:
            raise ValueError(f"a {self.kind} service needs `image:` (the image its seats run)")
        if self.port is None and default_port is None:
            raise ValueError("a generic service needs `port:` (the port the server listens on inside the container)")
        if self.kind == "generic" and not self.secret_env:
            raise ValueError(
                "a generic service needs `secret_env:`, the environment variable that receives each seat's "
                "generated password, because no seat runs without authentication"
            )
        if self.kind != "generic" and self.secret_env not in (None, default_secret):
            raise ValueError(f"a {self.kind} seat's secret goes in {default_secret}; leave out `secret_env:`")
        if self.login_secret_env in self.env:
            raise ValueError(f"env must not set {self.login_secret_env}: fleet generates one per seat")
        if self.publish is not None and self.publish + self.seat_ports - 1 > 65535:
            raise ValueError(f"publish {self.publish} + {self.seat_ports} seats runs past port 65535")
        return self

    @property
    def seat_ports(self) -> int:
        """Seats per host, spares included: each has its own host port."""
        return self.seats + self.spares

    @property
    def container_port(self) -> int:
        return self.port if self.port is not None else KINDS[self.kind].port

    @property
    def kind_of(self) -> Kind:
        return KINDS[self.kind]

    @property
    def login_secret_env(self) -> str:
        return self.secret_env or KINDS[self.kind].secret_env

    @property
    def login_user(self) -> str:
        return KINDS[self.kind].login_user

    @property
    def work_dir(self) -> str | None:
        return self.workdir or KINDS[self.kind].workdir

    @property
    def exec_user(self) -> str:
        return self.user if self.user is not None else KINDS[self.kind].exec_user

    @property
    def readiness(self) -> Ready:
        """How this service's seats show they answer: the kind's check, with the inventory's overrides."""
        ready = KINDS[self.kind].ready
        return Ready(self.health or ready.path, "ok" if self.health and ready.expect == "any" else ready.expect,
                     self.ready_timeout or ready.timeout)

    @property
    def memory_bytes(self) -> int | None:
        return parse_memory(self.memory) if self.memory else None

    @property
    def host_ports(self) -> range:
        """The host ports of its seats, spares included (publish is filled in by the loader when the file leaves
        it out)."""
        return range(self.publish, self.publish + self.seat_ports) if self.publish is not None else range(0)

    def group_limits(self, group: str | None) -> GroupLimits | None:
        """The overrides of a roster group on this service (matched ignoring case), None when it has none."""
        if not group:
            return None
        return next((v for k, v in self.groups.items() if group_key(k) == group_key(group)), None)

    def for_group(self, group: str | None) -> Service:
        """This service as a seat of a student of ``group`` runs it: the group's memory/cpus where it gives them."""
        limits = self.group_limits(group)
        if limits is None:
            return self
        return self.model_copy(update={k: getattr(limits, k) for k in limits.model_fields_set})

    def data_mount(self, data: DataSettings | None) -> str | None:
        """Where course data ``data`` is mounted in this service's seats: its ``mount``, else ``data`` in the
        work folder; None when neither is known (a generic service without workdir must say)."""
        if data is None:
            return None
        if data.mount:
            return data.mount
        return f"{self.work_dir.rstrip('/')}/{DATA_FOLDER}" if self.work_dir else None


def check_ports(services: list[Service], reserved: dict[int, str], problems: Problems) -> None:
    """Every seat of every service gets its own host port on each host, none of them a ``reserved`` one
    (port → what holds it, e.g. the SSH port), and every service its own name."""
    names: dict[str, int] = {}
    owner: dict[int, int] = {}
    for i, svc in enumerate(services):
        if svc.name in names:
            problems.add(f"service name {svc.name!r} is used twice (also services[{names[svc.name]}])",
                         ("services", i), field=f"services[{i}].name")
        names.setdefault(svc.name, i)
        if not svc.host_ports:
            continue
        clash = sorted(set(reserved).intersection(svc.host_ports))
        if clash:
            problems.add(f"seat ports {svc.publish}-{svc.host_ports[-1]} include {reserved[clash[0]]} ({clash[0]}); "
                         "pick another `publish`", ("services", i, "publish"))
        # which earlier service owns each port: linear in the ports, where comparing every pair of
        # services took minutes for a file of thousands of services
        overlapping = {owner[p] for p in svc.host_ports if p in owner}
        if overlapping:
            other = services[min(overlapping)]
            problems.add(
                f"seat ports {svc.publish}-{svc.host_ports[-1]} overlap those of service {other.name!r} "
                f"({other.publish}-{other.host_ports[-1]}); start this one at {other.host_ports[-1] + 1} or later",
                ("services", i, "publish"))
        owner.update((p, i) for p in svc.host_ports if p not in owner)


def data_folder(base: Path, data: DataSettings) -> Path:
    """The course data's folder on this computer: ``src`` relative to the inventory's folder."""
    return (base / Path(data.src).expanduser()).resolve()


def check_data(services: list[Service], fleet_data: DataSettings | None, base: Path, problems: Problems) -> None:
    """Course data: each ``src`` a folder on this computer (relative to the inventory's folder); each seat's mount
    neither its work folder nor a folder above it (it would hide the students' files); a service called
    ``fleet`` has no data of its own while the fleet has some (both would be the host's folder ``fleet``)."""
    def source(data: DataSettings, path: Path_) -> None:
        folder = data_folder(base, data)
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            problems.add(f"{data.src!r} {what} (looked at {folder}); name the folder of files to share", (*path, "src"))

    if fleet_data is not None:
        source(fleet_data, ("data",))
    for i, svc in enumerate(services):
        if svc.data is not None:
            source(svc.data, ("services", i, "data"))
            if fleet_data is not None and svc.name == FLEET_DATA:
                problems.add(f"a service called {FLEET_DATA!r} cannot have data of its own while the fleet has "
                             "`data:` (both would be kept in the host's folder of that name); rename the service",
                             ("services", i, "data"))
        data = svc.data or fleet_data
        if data is None:
            continue
        path: Path_ = ("services", i, "data") if svc.data else ("data",)
        field = f"services[{i}].data.mount"
        mount = svc.data_mount(data)
        if mount is None:
            problems.add(f"service {svc.name!r} has no `workdir:` to put the data in: give `mount:`, the folder in "
                         "its seats to mount it at", (*path, "mount"), field=field)
            continue
        work = (svc.work_dir or "").rstrip("/")
        if work and (mount == work or work.startswith(mount + "/")):
            problems.add(f"mount {mount} would hide the students' files of service {svc.name!r} (its work folder "
                         f"is {work}); mount the data inside it, e.g. {work}/{DATA_FOLDER}", (*path, "mount"),
                         field=field)
