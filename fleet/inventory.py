"""The inventory: the teacher's YAML file, validated into typed data.

Nothing touches a network before the whole file is valid, and every error
names the file, the line and the field, and says what would be valid. Unknown
keys are errors, because a typo that is silently ignored (``sets: 30``) costs a
workshop. The schema is strict: YAML turns ``no`` into False and ``0755`` into
493, so a value of the wrong type is refused rather than coerced.
"""
from __future__ import annotations

import difflib
import ipaddress
import os
import re
import reprlib
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fleet import roster as roster_mod
from fleet.errors import InputError
from fleet.kinds import KINDS, Kind, Ready

MAX_FILE_BYTES = 1_000_000
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$")
SERVICE_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LABEL_ = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){LABEL_}(\.{LABEL_})*$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmg]?)(?:i?b)?$", re.IGNORECASE)
CPUSET_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")
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


def _check_image(value: str) -> str:
    if not IMAGE_RE.match(value):
        raise ValueError(f"{value!r} is not an image reference, e.g. quay.io/jupyter/scipy-notebook:2025-06-02")
    return value


def _check_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if HOSTNAME_RE.match(value) and not value.replace(".", "").isdigit():
        return value
    raise ValueError(f"{value!r} is not an IP address or host name")


class Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class SSHSettings(Model):
    user: str = "root"
    port: int = Field(22, ge=1, le=65535)
    key: str | None = None

    _user = field_validator("user")(lambda v: _check_user(v))


def _check_user(value: str | None) -> str | None:
    if value is not None and not USER_RE.match(value):
        raise ValueError(f"{value!r} is not a login name (lower-case letters, digits, _ . -)")
    return value


class HostEntry(Model):
    address: str
    user: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    key: str | None = None
    name: str | None = None  # the DNS name students use (and the certificate's), when it has one

    _address = field_validator("address")(lambda v: _check_address(v))
    _name = field_validator("name")(lambda v: _check_dns_name(v))
    _user = field_validator("user")(lambda v: _check_user(v))

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        """Accept ``host``, ``user@host`` and ``user@host:port`` as shorthand."""
        if not isinstance(data, str):
            return data
        user, _, rest = data.rpartition("@")
        port = None
        if rest.count(":") == 1:
            rest, _, port_text = rest.partition(":")
            if not port_text.isdigit():
                raise ValueError(f"{data!r}: the port after ':' must be a number")
            port = int(port_text)
        rest = rest.strip("[]")
        return {"address": rest, **({"user": user} if user else {}), **({"port": port} if port else {})}


def _check_dns_name(value: str | None) -> str | None:
    if value is not None and (not HOSTNAME_RE.match(value) or "." not in value):
        raise ValueError(f"{value!r} is not a DNS name like lab1.example.org")
    return value


class TLSSettings(Model):
    """How seats are served. ``internal``: HTTPS with certificates from the
    proxy's own authority (no set-up, browsers warn once); ``sslip``: trusted
    Let's Encrypt certificates for NAME.sslip.io (public IPv4 only); ``acme``:
    trusted certificates for the hosts' DNS names under ``domain`` (or their
    ``name:``); ``off``: plain HTTP straight to the seats (passwords readable
    by anyone on the network)."""

    mode: Literal["internal", "sslip", "acme", "off"] = "internal"
    domain: str | None = None
    email: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """``tls: off`` reaches us as False (YAML 1.1); ``tls: {domain: ...}`` means acme."""
        if data is False:
            return {"mode": "off"}
        if data is True:
            return {"mode": "internal"}
        if isinstance(data, str):
            return {"mode": data}
        if isinstance(data, dict) and "mode" not in data and "domain" in data:
            return {"mode": "acme", **data}
        return data

    _domain = field_validator("domain")(lambda v: _check_dns_name(v))

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", v):
            raise ValueError(f"{v!r} is not an e-mail address (Let's Encrypt sends expiry warnings there)")
        return v


class ProxySettings(Model):
    """The TLS reverse proxy container run on each host (Caddy)."""

    image: str = "caddy:2"
    push: bool = False

    _image = field_validator("image")(lambda v: _check_image(v))


class DockerSettings(Model):
    source: Literal["official", "distro"] = "official"


class Timeouts(Model):
    """Seconds. Every remote wait and command is bounded by one of these."""

    connect: int = Field(15, ge=1, le=600)
    command: int = Field(300, ge=1, le=7200)
    install: int = Field(900, ge=10, le=7200)
    lock: int = Field(300, ge=0, le=7200)
    cloud_init: int = Field(600, ge=0, le=7200)
    push: int = Field(1800, ge=10, le=7200)
    droplet: int = Field(600, ge=10, le=7200)  # a new droplet: active, public IPv4 and SSH; teardown: all gone


class HandoutSettings(Model):
    """What the printed handout says besides the seats; see fleet/handout.py."""

    title: str | None = Field(None, min_length=1, max_length=80)  # default: the fleet's name
    # Shown on cards whose address is https. None: a default sentence for the fleet's own (self-signed)
    # certificates; "": nothing, for certificates browsers trust (a real domain, sslip).
    certificate_note: str | None = Field(None, max_length=400)


class Service(Model):
    name: str
    kind: Literal["jupyter", "rstudio", "generic"] = "jupyter"
    image: str
    port: int | None = Field(None, ge=1, le=65535)
    publish: int = Field(ge=1, le=65535)
    seats: int = Field(1, ge=1, le=500)
    memory: str | None = None
    cpus: float | None = Field(None, gt=0, le=1024)
    cpuset: str | None = None
    env: dict[str, str] = {}
    push: bool = False
    secret_env: str | None = None
    workdir: str | None = None  # the students' files (a volume per seat); default per kind
    user: str | None = None  # who owns them inside the container; default per kind
    health: str | None = None  # the path that answers 200-399 once the seat is up; default per kind
    ready_timeout: int | None = Field(None, ge=1, le=3600)  # seconds a new seat gets to answer; default per kind

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not SERVICE_RE.match(v):
            raise ValueError(f"{v!r} is not a service name (lower-case letters, digits and -, starting with a letter)")
        return v

    _image = field_validator("image")(lambda v: _check_image(v))

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str | None) -> str | None:
        if v is not None:
            parse_memory(v)
        return v

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

    _user = field_validator("user")(lambda v: _check_user(v) if v else v)

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
        if self.publish + self.seats - 1 > 65535:
            raise ValueError(f"publish {self.publish} + {self.seats} seats runs past port 65535")
        return self

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
        return range(self.publish, self.publish + self.seats)


SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,63}$")
TOKEN_KEYS = ("token", "access_token", "api_token", "api_key", "digitalocean_access_token", "do_token")
TOKEN_VALUE_RE = re.compile(r"^do[opr]_v1_[0-9a-f]{64}$")


class DigitalOceanSettings(Model):
    """Droplets fleet creates, provisions and destroys (see fleet/droplets.py).

    The API token is deliberately not a field: it comes from the environment
    (DIGITALOCEAN_ACCESS_TOKEN), never from a file that gets copied around.
    """

    count: int = Field(ge=1, le=100)
    region: str
    size: str
    image: str | int
    ssh_key: str  # the public key file; the private key is the same path without .pub
    user: str = "root"

    @field_validator("region", "size")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not SLUG_RE.match(v):
            raise ValueError(f"{v!r} is not a DigitalOcean slug (lower-case letters, digits, - and ., e.g. ams3, s-2vcpu-4gb)")
        return v

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | int) -> str | int:
        if isinstance(v, str) and not SLUG_RE.match(v):
            raise ValueError(f"{v!r} is not an image slug like ubuntu-24-04-x64 (or a numeric image id)")
        return v

    @field_validator("ssh_key")
    @classmethod
    def _pub(cls, v: str) -> str:
        if not v.endswith(".pub"):
            raise ValueError(f"{v!r}: name the public key file (…/id_ed25519.pub); its private half, the same path "
                             "without .pub, is what fleet logs in with")
        return v

    _user = field_validator("user")(lambda v: _check_user(v))


class InventoryModel(Model):
    name: str
    ssh: SSHSettings = SSHSettings()
    hosts: list[HostEntry] = []  # at least one server here or a digitalocean block: checked in load()
    digitalocean: DigitalOceanSettings | None = None
    docker: DockerSettings = DockerSettings()
    tls: TLSSettings = TLSSettings()
    proxy: ProxySettings = ProxySettings()
    firewall: bool = False  # true: ufw/firewalld allow SSH and the seat ports only
    parallel: int = Field(10, ge=1, le=200)
    timeouts: Timeouts = Timeouts()
    services: list[Service] = Field(min_length=1)
    roster: str | list[Any] | None = None  # a CSV file beside the inventory, or the names; items checked in load()
    handout: HandoutSettings = HandoutSettings()

    @field_validator("roster", mode="before")
    @classmethod
    def _roster(cls, v: Any) -> Any:
        if v is not None and not isinstance(v, str | list):
            raise ValueError("must be a CSV file (roster: students.csv) or a list of names (`- Ana López` lines)")
        if v == "":
            raise ValueError("name the CSV file, e.g. roster: students.csv, or leave out `roster:`")
        return v

    @field_validator("digitalocean", mode="before")
    @classmethod
    def _digitalocean(cls, v: Any) -> Any:
        if v is None:
            raise ValueError("an empty block: give count, region, size, image and ssh_key, or remove `digitalocean:`")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(
                f"{v!r} is not a fleet name: 1-32 lower-case letters, digits and -, starting with a letter "
                "(it names containers, labels and droplets)"
            )
        return v


@dataclass(frozen=True)
class Host:
    """One server, with the inventory's SSH defaults filled in."""

    address: str
    user: str
    port: int
    key: str | None
    name: str | None = None  # DNS name for URLs and certificates, when it has one

    @property
    def id(self) -> str:
        """How the state file and the tables name this host."""
        return self.address if self.port == 22 else f"{self.address}:{self.port}"


@dataclass(frozen=True)
class Inventory:
    path: Path
    model: InventoryModel
    hosts: tuple[Host, ...]
    roster: roster_mod.Roster | None = None

    @property
    def server_count(self) -> int:
        """Servers in the whole fleet: the listed hosts and the droplets to create."""
        return len(self.hosts) + (self.model.digitalocean.count if self.model.digitalocean else 0)

    @property
    def seat_count(self) -> int:
        """Seats in the whole fleet: every host gets every service's seats."""
        return self.server_count * sum(s.seats for s in self.services)

    @property
    def droplet_key(self) -> tuple[Path, Path] | None:
        """The droplets' SSH key: (public key file, private key file), checked to exist by load()."""
        if self.model.digitalocean is None:
            return None
        public = (self.path.parent / Path(self.model.digitalocean.ssh_key).expanduser()).resolve()
        return public, public.with_suffix("")

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def services(self) -> list[Service]:
        return self.model.services

    @property
    def timeouts(self) -> Timeouts:
        return self.model.timeouts


# --- YAML with line numbers -------------------------------------------------

Path_ = tuple[Any, ...]


def _compose(text: str, file: str) -> tuple[Any, dict[Path_, int], dict[Path_, str]]:
    """Parse YAML and remember the line of every key and item, and the source
    text of every scalar.

    Aliases are shared, never re-walked, so a billion-laughs document costs
    no more than its text; duplicate keys are refused (YAML keeps the last one
    silently).
    """
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # its reader refuses control characters at once
        node = loader.get_single_node()
        if node is None:
            raise InputError("the file is empty; see inventories/lab.yml for an example", file=file)
        lines: dict[Path_, int] = {}
        texts: dict[Path_, str] = {}
        seen: set[int] = set()

        def walk(n: yaml.Node, path: Path_) -> None:
            lines.setdefault(path, n.start_mark.line + 1)
            if id(n) in seen:
                return
            seen.add(id(n))
            if isinstance(n, yaml.MappingNode):
                keys: dict[Any, int] = {}
                for k, v in n.value:
                    key = k.value if isinstance(k, yaml.ScalarNode) else str(k.start_mark)
                    if key in keys and key != "<<":
                        raise InputError(
                            f"`{key}` appears twice (first on line {keys[key]}); keep one",
                            file=file, line=k.start_mark.line + 1, field=_dotted(path + (key,)),
                        )
                    keys[key] = k.start_mark.line + 1
                    lines[path + (key,)] = k.start_mark.line + 1
                    walk(v, path + (key,))
            elif isinstance(n, yaml.SequenceNode):
                for i, item in enumerate(n.value):
                    walk(item, path + (i,))
            elif isinstance(n, yaml.ScalarNode):
                texts[path] = n.value

        walk(node, ())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise InputError(
            f"not valid YAML: {e.problem or e.context}", file=file, line=mark.line + 1 if mark else None
        ) from None
    except yaml.reader.ReaderError as e:
        raise InputError(f"character U+{e.character:04X} is not allowed in YAML text; remove it (or write it as an "
                         "escape inside double quotes)", file=file, line=text.count("\n", 0, e.position) + 1) from None
    except yaml.YAMLError as e:
        raise InputError(f"not valid YAML: {' '.join(str(e).split())}", file=file) from None
    except RecursionError:
        raise InputError("the YAML is nested too deeply", file=file) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines, texts


def _env_as_written(data: dict, texts: dict[Path_, str]) -> None:
    """Env values are text: take each scalar as the teacher wrote it.

    YAML 1.1 would turn ``on`` into True, ``0755`` into 493 and ``1.10`` into
    1.1; a container's environment wants the characters in the file.
    """
    services = data.get("services")
    if not isinstance(services, list):
        return
    for i, svc in enumerate(services):
        env = svc.get("env") if isinstance(svc, dict) else None
        if isinstance(env, dict):
            for key in env:
                text = texts.get(("services", i, "env", key))
                if text is not None and not isinstance(env[key], str):
                    env[key] = text


def _roster_as_written(data: dict, texts: dict[Path_, str]) -> None:
    """Names in a YAML roster are text as written: a student called `No` or `1e3` stays so."""
    names = data.get("roster")
    if isinstance(names, list):
        for i, name in enumerate(names):
            text = texts.get(("roster", i))
            if text is not None and not isinstance(name, str):
                names[i] = text


def _dotted(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _line_for(lines: dict[Path_, int], path: Path_) -> int | None:
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None


def _fields_at(path: Path_) -> list[str]:
    """The field names valid at a location, for "did you mean" hints."""
    model: Any = InventoryModel
    for p in path:
        if isinstance(p, int):
            continue
        field = model.model_fields.get(p)
        if field is None:
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        candidates = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not candidates:
            return []
        model = candidates[0]
    return list(model.model_fields)


_QUOTE = reprlib.Repr()  # quotes of the input stay short, whatever its size or depth
_QUOTE.maxlevel, _QUOTE.maxstring, _QUOTE.maxother = 2, 80, 80
_QUOTE.maxlist = _QUOTE.maxdict = _QUOTE.maxtuple = _QUOTE.maxset = 4


def _message(err: dict) -> str:
    err = {**err, "input": _Quoted(_QUOTE.repr(err.get("input")))}
    kind, loc = err["type"], err["loc"]
    if kind == "extra_forbidden":
        valid = _fields_at(loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        text = f"unknown field `{loc[-1]}`"
        if hint:
            text += f"; did you mean `{hint[0]}`?"
        return text + (f" Valid fields here: {', '.join(valid)}" if valid else "")
    if kind == "missing":
        return "this field is required"
    if kind in ("int_type", "int_parsing"):
        return f"must be a whole number, not {err['input']!r}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number, not {err['input']!r}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false, not {err['input']!r}"
    if kind in ("string_type",):
        return f"must be text, not {err['input']!r} (quote it if YAML read it as something else)"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping of `key: value` lines, not {err['input']!r}"
    if kind == "list_type":
        return f"must be a list of `- item` lines, not {err['input']!r}"
    if kind == "too_short":
        return "must not be empty: list at least one"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than"):
        return f"{err['input']!r}: {err['msg'].lower().replace('input ', 'value ')}"
    if kind == "literal_error":
        return f"{err['input']!r} is not valid: {err['msg'].replace('Input should be', 'use')}"
    msg = err["msg"]
    return msg.removeprefix("Value error, ")


def _loc(err: dict) -> Path_:
    # pydantic adds the function name of "before" validators for unions; keep data keys only
    return tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))


class _Quoted(str):
    """A bounded quote of the input: its repr is itself (the messages below use !r)."""

    def __repr__(self) -> str:
        return str(self)


def _read_at_most(path: Path, limit: int, file: str) -> bytes:
    """At most ``limit`` bytes of a regular file: never all of a huge one, never waiting on a pipe or device."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError("not a regular file; give the path of the inventory's YAML file", file=file)
        chunks, size = [], 0
        while size < limit and (chunk := os.read(fd, limit - size)):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


YAML11_OCTAL = re.compile(r"^[-+]?0[0-7_]+$")
YAML11_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$")


def _refuse_yaml11_numbers(data: Any, lines: dict[Path_, int], texts: dict[Path_, str], file: str) -> None:
    """YAML 1.1 reads ``0755`` as 493 and ``1:30`` as 90: refuse such a number instead of using a surprise."""
    for path, text in texts.items():
        kind = "octal" if YAML11_OCTAL.match(text) else "sexagesimal (base 60)" if YAML11_SEXAGESIMAL.match(text) else None
        if kind is None:
            continue
        value: Any = data
        try:
            for p in path:
                value = value[p]
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise InputError(
                f"`{text}` is read by YAML as the {kind} number {value}; write the number you mean without "
                "a leading 0 or colon (or quote it if it is text)",
                file=file, line=_line_for(lines, path), field=_dotted(path))


def load(path: str | Path) -> Inventory:
    """Read and validate an inventory file, or raise InputError naming the spot."""
    path = Path(path)
    file = str(path)
    try:
        raw = _read_at_most(path, MAX_FILE_BYTES + 1, file)
    except FileNotFoundError:
        raise InputError("no such file; copy inventories/lab.yml and edit it", file=file) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", file=file) from None
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(f"the file is larger than {MAX_FILE_BYTES // 1000} kB; an inventory is a few lines", file=file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError("the file is not UTF-8 text; save it as UTF-8", file=file, line=line) from None
    data, lines, texts = _compose(text, file)
    if not isinstance(data, dict):
        raise InputError("the top level must be a mapping (name:, hosts:, services:, ...)", file=file, line=1)
    _env_as_written(data, texts)
    _roster_as_written(data, texts)
    _refuse_yaml11_numbers(data, lines, texts, file)
    _refuse_tokens(data, lines, texts, file)
    try:
        model = InventoryModel.model_validate(data)
    except ValidationError as e:
        errors = sorted(e.errors(), key=lambda err: _line_for(lines, _loc(err)) or 0)
        err, loc = errors[0], _loc(errors[0])
        more = f" (and {len(errors) - 1} more problem{'s' * (len(errors) > 2)} after this one)" if len(errors) > 1 else ""
        raise InputError(_message(err) + more, file=file, line=_line_for(lines, loc), field=_dotted(loc)) from None
    if not model.hosts and model.digitalocean is None:
        raise InputError("list at least one server under `hosts:`, or add a `digitalocean:` block to create droplets",
                         file=file, line=_line_for(lines, ("hosts",)), field="hosts")
    hosts = _resolve_hosts(model, path, lines)
    _check_droplet_key(model, path, lines)
    _check_ports(model, lines, file)
    inv = Inventory(path=path, model=model, hosts=hosts)
    return Inventory(path=path, model=model, hosts=hosts, roster=_load_roster(inv, lines))


def _load_roster(inv: Inventory, lines: dict[Path_, int]) -> roster_mod.Roster | None:
    """Read the roster (a CSV file relative to the inventory, or the YAML list) and check it fits the seats."""
    spec, file, line = inv.model.roster, str(inv.path), _line_for(lines, ("roster",))
    if spec is None:
        return None
    if isinstance(spec, str):
        roster = roster_mod.read_csv((inv.path.parent / Path(spec).expanduser()).resolve(), file, line)
    else:
        entries = []
        for i, name in enumerate(spec):
            at, where = _line_for(lines, ("roster", i)), f"roster[{i}]"
            if not isinstance(name, str):
                raise InputError("each roster entry is one name on a `- ` line", file=file, line=at, field=where)
            if not name.strip():
                raise InputError("an empty name; remove the line", file=file, line=at, field=where)
            entries.append((roster_mod.clean(name, file=file, line=at, field=where), at))
        roster = roster_mod.from_entries(entries, file=file, field_of=lambda i: f"roster[{i}]")
    if len(roster.names) > inv.seat_count:
        per_host = sum(s.seats for s in inv.services)
        raise InputError(
            f"{len(roster.names)} students but only {inv.seat_count} seats ({inv.server_count} host"
            f"{'s' * (inv.server_count != 1)} x {per_host} seat{'s' * (per_host != 1)} each); add seats or hosts",
            file=file, line=line, field="roster")
    return roster


def _resolve_key(key: str | None, base: Path, file: str, line: int | None, field: str) -> str | None:
    if key is None:
        return None
    resolved = (base / Path(key).expanduser()).resolve()
    if not resolved.is_file():
        raise InputError(f"key file {key!r} does not exist (looked at {resolved})", file=file, line=line, field=field)
    return str(resolved)


def line_of(inventory: Inventory, *path: str | int) -> int | None:
    """The line of a field in the inventory's file, for errors found after load() (e.g. a size the API lacks)."""
    try:
        _, lines, _ = _compose(inventory.path.read_text(), str(inventory.path))
    except (OSError, InputError):
        return None
    return _line_for(lines, tuple(path))


def _refuse_tokens(data: dict, lines: dict[Path_, int], texts: dict[Path_, str], file: str) -> None:
    """An API token written in the inventory is refused, and never echoed.

    The file is copied, mailed and committed; a token in it is a leaked key to
    the teacher's cloud account. Refused as a field name in the digitalocean
    block and as a value shaped like a DigitalOcean token anywhere.
    """
    block = data.get("digitalocean")
    for key in block if isinstance(block, dict) else ():
        if str(key).lower() in TOKEN_KEYS:
            raise InputError(
                "never write the API token in the inventory (it travels with every copy of this file); remove this "
                "line and `export DIGITALOCEAN_ACCESS_TOKEN=...` in the shell that runs fab",
                file=file, line=_line_for(lines, ("digitalocean", key)), field=f"digitalocean.{key}")
    for where, text in texts.items():
        if TOKEN_VALUE_RE.match(text.strip()):
            raise InputError(
                "this looks like a DigitalOcean API token; never write it in the inventory: remove it and "
                "`export DIGITALOCEAN_ACCESS_TOKEN=...` instead",
                file=file, line=_line_for(lines, where), field=_dotted(where))


def _check_droplet_key(model: InventoryModel, path: Path, lines: dict[Path_, int]) -> None:
    """The droplets' public key must exist and be one, and its private half must sit beside it."""
    if model.digitalocean is None:
        return
    file, line, field = str(path), _line_for(lines, ("digitalocean", "ssh_key")), "digitalocean.ssh_key"
    public = Path(_resolve_key(model.digitalocean.ssh_key, path.parent, file, line, field))
    text = public.read_text(errors="replace").strip()
    if len(text.split()) < 2 or not text.split()[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise InputError(f"{public} is not an OpenSSH public key (ssh-ed25519 AAAA... comment)",
                         file=file, line=line, field=field)
    if not public.with_suffix("").is_file():
        raise InputError(f"the private key {public.with_suffix('')} is missing; fleet logs in to the droplets with it",
                         file=file, line=line, field=field)


def _resolve_hosts(model: InventoryModel, path: Path, lines: dict[Path_, int]) -> tuple[Host, ...]:
    file, base = str(path), path.parent
    default_key = _resolve_key(model.ssh.key, base, file, _line_for(lines, ("ssh", "key")), "ssh.key")
    seen: dict[tuple[str, int], int] = {}
    hosts = []
    for i, entry in enumerate(model.hosts):
        line = _line_for(lines, ("hosts", i))
        port = entry.port or model.ssh.port
        ident = (entry.address.lower(), port)
        if ident in seen:
            raise InputError(
                f"{entry.address} port {port} is listed twice (also hosts[{seen[ident]}]); list each server once",
                file=file, line=line, field=f"hosts[{i}]",
            )
        seen[ident] = i
        key = _resolve_key(entry.key, base, file, line, f"hosts[{i}].key") if entry.key else default_key
        hosts.append(Host(address=entry.address, user=entry.user or model.ssh.user, port=port, key=key,
                          name=entry.name))
    return tuple(hosts)


def _check_ports(model: InventoryModel, lines: dict[Path_, int], file: str) -> None:
    """Every seat of every service gets its own host port on each host."""
    names: dict[str, int] = {}
    owner: dict[int, int] = {}
    ssh_ports = {model.ssh.port} | {h.port for h in model.hosts if h.port} | ({22} if model.digitalocean else set())
    reserved = {port: "the SSH port" for port in ssh_ports}
    if model.tls.mode in ("sslip", "acme"):
        reserved[80] = "port 80, which Let's Encrypt needs for its HTTP challenge"
    for i, svc in enumerate(model.services):
        line = _line_for(lines, ("services", i))
        if svc.name in names:
            raise InputError(f"service name {svc.name!r} is used twice (also services[{names[svc.name]}])",
                             file=file, line=line, field=f"services[{i}].name")
        names[svc.name] = i
        clash = sorted(set(reserved).intersection(svc.host_ports))
        if clash:
            raise InputError(
                f"seat ports {svc.publish}-{svc.host_ports[-1]} include {reserved[clash[0]]} ({clash[0]}); "
                "pick another `publish`",
                file=file, line=_line_for(lines, ("services", i, "publish")), field=f"services[{i}].publish",
            )
        # which earlier service owns each port: linear in the ports, where comparing every pair of
        # services took minutes for a file of thousands of services
        overlapping = {owner[p] for p in svc.host_ports if p in owner}
        if overlapping:
            other = model.services[min(overlapping)]
            raise InputError(
                f"seat ports {svc.publish}-{svc.host_ports[-1]} overlap those of service {other.name!r} "
                f"({other.publish}-{other.host_ports[-1]}); start this one at {other.host_ports[-1] + 1} or later",
                file=file, line=_line_for(lines, ("services", i, "publish")), field=f"services[{i}].publish",
            )
        owner.update(dict.fromkeys(svc.host_ports, i))
