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
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fleet.errors import InputError

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
KIND_DEFAULTS = {  # container port, env variable that receives the seat's secret, login user
    "jupyter": (8888, "JUPYTER_TOKEN", ""),
    "rstudio": (8787, "PASSWORD", "rstudio"),
    "generic": (None, None, ""),
}


def parse_memory(text: str) -> int:
    """'512m', '2g', '1.5GiB' → bytes (Docker's units: powers of 1024)."""
    m = MEMORY_RE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a memory size; write a number with a unit, e.g. 512m or 2g")
    value = int(float(m.group(1)) * UNITS[m.group(2).lower()])
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

    _address = field_validator("address")(lambda v: _check_address(v))
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

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not SERVICE_RE.match(v):
            raise ValueError(f"{v!r} is not a service name (lower-case letters, digits and -, starting with a letter)")
        return v

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if not IMAGE_RE.match(v):
            raise ValueError(f"{v!r} is not an image reference, e.g. quay.io/jupyter/scipy-notebook:2025-06-02")
        return v

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
        return v

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, v: str | None) -> str | None:
        if v is not None and not ENV_KEY_RE.match(v):
            raise ValueError(f"{v!r} is not an environment variable name")
        return v

    @model_validator(mode="after")
    def _kind_rules(self) -> Service:
        default_port, default_secret, _ = KIND_DEFAULTS[self.kind]
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
        return self.port if self.port is not None else KIND_DEFAULTS[self.kind][0]

    @property
    def login_secret_env(self) -> str:
        return self.secret_env or KIND_DEFAULTS[self.kind][1]

    @property
    def login_user(self) -> str:
        return KIND_DEFAULTS[self.kind][2]

    @property
    def memory_bytes(self) -> int | None:
        return parse_memory(self.memory) if self.memory else None

    @property
    def host_ports(self) -> range:
        return range(self.publish, self.publish + self.seats)


class InventoryModel(Model):
    name: str
    ssh: SSHSettings = SSHSettings()
    hosts: list[HostEntry] = Field(min_length=1)
    docker: DockerSettings = DockerSettings()
    parallel: int = Field(10, ge=1, le=200)
    timeouts: Timeouts = Timeouts()
    services: list[Service] = Field(min_length=1)

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

    @property
    def id(self) -> str:
        """How the state file and the tables name this host."""
        return self.address if self.port == 22 else f"{self.address}:{self.port}"


@dataclass(frozen=True)
class Inventory:
    path: Path
    model: InventoryModel
    hosts: tuple[Host, ...]

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
    loader = yaml.SafeLoader(text)
    try:
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
    except yaml.YAMLError as e:
        raise InputError(f"not valid YAML: {e}", file=file) from None
    except RecursionError:
        raise InputError("the YAML is nested too deeply", file=file) from None
    finally:
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


def _message(err: dict) -> str:
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


def load(path: str | Path) -> Inventory:
    """Read and validate an inventory file, or raise InputError naming the spot."""
    path = Path(path)
    file = str(path)
    try:
        raw = path.read_bytes()[: MAX_FILE_BYTES + 1]
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
    try:
        model = InventoryModel.model_validate(data)
    except ValidationError as e:
        errors = sorted(e.errors(), key=lambda err: _line_for(lines, _loc(err)) or 0)
        err, loc = errors[0], _loc(errors[0])
        more = f" (and {len(errors) - 1} more problem{'s' * (len(errors) > 2)} after this one)" if len(errors) > 1 else ""
        raise InputError(_message(err) + more, file=file, line=_line_for(lines, loc), field=_dotted(loc)) from None
    hosts = _resolve_hosts(model, path, lines)
    _check_ports(model, lines, file)
    return Inventory(path=path, model=model, hosts=hosts)


def _resolve_key(key: str | None, base: Path, file: str, line: int | None, field: str) -> str | None:
    if key is None:
        return None
    resolved = (base / Path(key).expanduser()).resolve()
    if not resolved.is_file():
        raise InputError(f"key file {key!r} does not exist (looked at {resolved})", file=file, line=line, field=field)
    return str(resolved)


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
        hosts.append(Host(address=entry.address, user=entry.user or model.ssh.user, port=port, key=key))
    return tuple(hosts)


def _check_ports(model: InventoryModel, lines: dict[Path_, int], file: str) -> None:
    """Every seat of every service gets its own host port on each host."""
    names: dict[str, int] = {}
    ssh_ports = {model.ssh.port} | {h.port for h in model.hosts if h.port}
    for i, svc in enumerate(model.services):
        line = _line_for(lines, ("services", i))
        if svc.name in names:
            raise InputError(f"service name {svc.name!r} is used twice (also services[{names[svc.name]}])",
                             file=file, line=line, field=f"services[{i}].name")
        names[svc.name] = i
        clash = ssh_ports.intersection(svc.host_ports)
        if clash:
            raise InputError(
                f"seat ports {svc.publish}-{svc.host_ports[-1]} include the SSH port {min(clash)}; pick another `publish`",
                file=file, line=_line_for(lines, ("services", i, "publish")), field=f"services[{i}].publish",
            )
        for other in model.services[:i]:
            overlap = set(svc.host_ports) & set(other.host_ports)
            if overlap:
                raise InputError(
                    f"seat ports {svc.publish}-{svc.host_ports[-1]} overlap those of service {other.name!r} "
                    f"({other.publish}-{other.host_ports[-1]}); start this one at {other.host_ports[-1] + 1} or later",
                    file=file, line=_line_for(lines, ("services", i, "publish")), field=f"services[{i}].publish",
                )
