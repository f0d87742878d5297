"""Reading an inventory file: bytes, YAML with line numbers, validation, and
the wording of every error.

Nothing touches a network before the whole file is valid, and every error
names the file, the line and the field, and says what would be valid. The file
is read bounded (a regular file, at most MAX_FILE_BYTES, UTF-8), parsed into
data plus the line of every key and the source text of every scalar, and
corrected where YAML 1.1 guesses wrong (env values and roster names stay text
as written; octal and base-60 numbers are refused). Then the schema
(model.py and the sections) validates it, defaults.py fills in what the file
leaves out, and the checks that need the inventory's folder or several
sections at once run. Every problem found is reported at once, in the file's
line order (base.Problems; at most 20 shown), with exit status 2; when the
schema fails, the checks that span sections still run on the sections that
are valid on their own. A pydantic error becomes one line in :func:`_message`,
the one place that words them; a missing required field with a near miss
beside it is reported as that typo only.
"""
from __future__ import annotations

import difflib
import os
import re
import reprlib
import stat
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from fleet.errors import InputError, InputErrors
from fleet.inventory.base import Path_, Problems, dotted, line_for
from fleet.inventory.cloud import check_droplet_key, refuse_tokens
from fleet.inventory.defaults import fill as fill_defaults
from fleet.inventory.hosts import resolve_hosts
from fleet.inventory.model import Inventory, InventoryModel
from fleet.inventory.services import check_data, check_ports
from fleet.inventory.students import load_roster
from fleet.inventory.tls import check_ca_root

MAX_FILE_BYTES = 1_000_000
YAML11_OCTAL = re.compile(r"^[-+]?0[0-7_]+$")
YAML11_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$")


def load(path: str | Path) -> Inventory:
    """Read and validate an inventory file, or raise InputErrors naming every spot (an InputError that reads
    as the first; a file that cannot be read or parsed has one problem)."""
    try:
        return _load(Path(path))
    except InputErrors:
        raise
    except InputError as e:
        raise InputErrors([e]) from None


def _load(path: Path) -> Inventory:
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
    problems = Problems(file, lines)
    _refuse_yaml11_numbers(data, texts, problems)
    refuse_tokens(data, texts, problems)
    model = _schema(data, problems)
    if model is None:  # the sections that are valid on their own still get the checks that span them
        _check_sections(data, path, problems)
        problems.raise_any()
    model, defaults = fill_defaults(model)
    if not model.hosts and model.digitalocean is None:
        problems.add("list at least one server under `hosts:`, or add a `digitalocean:` block to create droplets",
                     ("hosts",))
    hosts = resolve_hosts(model.hosts, model.ssh, path, problems)
    try:
        check_droplet_key(model.digitalocean, path, lines)
    except InputError as e:
        problems.error(e)
    try:
        check_ca_root(model.tls, path, lines)
    except InputError as e:
        problems.error(e)
    _check_publish(model, problems)
    check_data(model.services, model.data, path.parent, problems)
    inv = Inventory(path=path, model=model, hosts=hosts, defaults=defaults)
    roster = None
    try:
        roster = load_roster(inv, lines)
    except InputError as e:
        problems.error(e)
    problems.raise_any()
    return Inventory(path=path, model=model, hosts=hosts, roster=roster, defaults=defaults)


def _check_publish(model: InventoryModel, problems: Problems) -> None:
    """Seat ports: a block for every service (the defaults found one), none overlapping or reserved."""
    for i, svc in enumerate(model.services):
        if svc.publish is None:
            problems.add(f"no block of {svc.seat_ports} free ports is left from 8000 up; give `publish:`", ("services", i))
    check_ports(model.services, model.reserved_ports(), problems)


def _check_sections(data: dict, path: Path, problems: Problems) -> None:
    """The checks that span sections, run on the sections that are valid when the whole file is not:
    key files and servers listed twice (ssh, hosts), seat ports (services, with the SSH ports)."""
    def valid(name: str, default: Any) -> Any:
        try:
            return TypeAdapter(InventoryModel.model_fields[name].annotation).validate_python(
                data.get(name, default), strict=True)
        except ValidationError:
            return None

    ssh, hosts, services, tls = valid("ssh", {}), valid("hosts", []), valid("services", None), valid("tls", "auto")
    course = valid("data", None)
    if services is not None and (course is not None or data.get("data") is None):
        check_data(services, course, path.parent, problems)
    if ssh is None or hosts is None:
        return
    resolve_hosts(hosts, ssh, path, problems)
    if services is not None and tls is not None:
        partial = InventoryModel.model_construct(name="", ssh=ssh, hosts=hosts, tls=tls, services=services,
                                                 digitalocean=data.get("digitalocean"))
        _check_publish(fill_defaults(partial)[0], problems)


def line_of(inventory: Inventory, *path: str | int) -> int | None:
    """The line of a field in the inventory's file, for errors found after load() (e.g. a size the API lacks)."""
    try:
        _, lines, _ = _compose(inventory.path.read_text(), str(inventory.path))
    except (OSError, InputError):
        return None
    return line_for(lines, tuple(path))


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


# --- YAML with line numbers -------------------------------------------------


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
                            file=file, line=k.start_mark.line + 1, field=dotted(path + (key,)),
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
            if isinstance(name, dict):  # {name: ..., group: ...}
                for field in ("name", "group"):
                    text = texts.get(("roster", i, field))
                    if text is not None and field in name and name[field] is not None \
                            and not isinstance(name[field], str):
                        name[field] = text
                continue
            text = texts.get(("roster", i))
            if text is not None and not isinstance(name, str):
                names[i] = text


def _refuse_yaml11_numbers(data: Any, texts: dict[Path_, str], problems: Problems) -> None:
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
            problems.add(
                f"`{text}` is read by YAML as the {kind} number {value}; write the number you mean without "
                "a leading 0 or colon (or quote it if it is text)", path)


# --- pydantic's errors in the teacher's words --------------------------------


def _schema(data: dict, problems: Problems) -> InventoryModel | None:
    """The file against the schema: the model, or None with every error it has added to ``problems``."""
    try:
        return InventoryModel.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
    for err in _typos_over_missing(errors):
        problems.add(_message(err), _loc(err))
    return None


def _typos_over_missing(errors: list[dict]) -> list[dict]:
    """A missing required field with a near miss beside it (``servces:`` for ``services:``) is one problem:
    the typo, with its hint; the missing field is not reported as well."""
    missing = {_loc(e): e for e in errors if e["type"] == "missing"}
    dropped: set[int] = set()
    out = []
    for err in errors:
        loc = _loc(err)
        if err["type"] == "extra_forbidden" and loc:
            near = [str(m[-1]) for m in missing if m[:-1] == loc[:-1] and id(missing[m]) not in dropped]
            hint = difflib.get_close_matches(str(loc[-1]), near, n=1)
            if hint:
                dropped.add(id(missing[(*loc[:-1], hint[0])]))
                err = {**err, "hint": hint[0]}
        out.append(err)
    return [e for e in out if id(e) not in dropped]


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
    """One pydantic error as the teacher reads it: what is wrong and, where it helps, what is valid."""
    err = {**err, "input": _Quoted(_QUOTE.repr(err.get("input")))}
    kind, loc = err["type"], err["loc"]
    if kind == "extra_forbidden":
        valid = _fields_at(loc[:-1])
        hint = [err["hint"]] if err.get("hint") else difflib.get_close_matches(str(loc[-1]), valid, n=1)
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
    """A bounded quote of the input: its repr is itself (_message quotes with !r)."""

    def __repr__(self) -> str:
        return str(self)
