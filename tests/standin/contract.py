"""DigitalOcean's own OpenAPI specification, as the judge of every request and answer of the stand-in.

``openapi-droplets.yaml`` beside this file is a byte-for-byte copy of
shared/digitalocean/openapi-droplets.yaml: DigitalOcean's public
specification (github.com/digitalocean/openapi, commit 7c1300c479fe,
Apache License 2.0), cut down to the paths a droplet fleet needs. It is
vendored so the tests run where shared/ is not beside the repository; a unit
test checks the two are identical when both are there.

Validated with openapi-core: parameters, bodies, security (a bearer token),
status codes and response bodies and headers. Two adjustments, both of the
tooling and neither of the contract, each documented where it is made:

- The stand-in answers on 127.0.0.1; requests are presented to the validator
  as sent to the specification's server, https://api.digitalocean.com.
- Paths are matched without a trailing slash (python-digitalocean asks for
  ``droplets/``; the specification names ``/v2/droplets``).
- ``ssh_key_identifier`` is an ``anyOf`` of two ``readOnly`` schemas.
  readOnly means something only for properties in OpenAPI 3.0, but
  openapi-core applies it to the parameter too and refuses every value, so
  the parameter's schemas are used without the readOnly flag.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.request.exceptions import SecurityValidationError
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC = Path(__file__).with_name("openapi-droplets.yaml")
SERVER = "https://api.digitalocean.com"


@dataclass
class ApiRequest:
    """A request as openapi-core reads it (its Request protocol)."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes | None
    content_type: str
    host_url: str = SERVER
    parameters: RequestParameters = field(init=False)

    def __post_init__(self) -> None:
        self.method = self.method.lower()
        self.parameters = RequestParameters(query=ImmutableMultiDict(self.query), header=Headers(self.headers),
                                            cookie=ImmutableMultiDict())


@dataclass
class ApiResponse:
    """An answer as openapi-core reads it (its Response protocol)."""

    status_code: int
    data: bytes
    headers: dict[str, str]
    content_type: str = "application/json"


def normalise(path: str) -> str:
    """``/v2/droplets/`` → ``/v2/droplets``: the library's trailing slash is not part of the contract."""
    return path.rstrip("/") or "/"


def _without_readonly(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """A parameter schema with every readOnly flag removed (following $refs into copies)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = copy.deepcopy(spec["components"]["schemas"][name])
    schema = {k: v for k, v in schema.items() if k != "readOnly"}
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            schema[key] = [_without_readonly(s, spec) for s in schema[key]]
    return schema


@functools.cache
def _openapi() -> OpenAPI:
    spec = yaml.safe_load(SPEC.read_text())
    for param in spec["components"]["parameters"].values():
        if "schema" in param:
            param["schema"] = _without_readonly(param["schema"], spec)
    return OpenAPI.from_dict(spec)


def _describe(error: Exception) -> str:
    """One line: the error and, when there are any, the schema errors behind it."""
    parts = [str(error)]
    cause = error.__cause__
    for e in getattr(cause, "schema_errors", None) or getattr(error, "schema_errors", None) or []:
        for sub in (e.context or [e]):  # oneOf/anyOf: why each branch failed
            branch = f"[branch {sub.relative_schema_path[0]}] " if e.context else ""
            parts.append(f"{branch}{'/'.join(str(p) for p in sub.absolute_path) or '(body)'}: {sub.message}")
    if cause is not None and not getattr(cause, "schema_errors", None):
        parts.append(str(cause))
    return " | ".join(dict.fromkeys(p for p in parts if p))[:2000]


class Contract:
    """Checks requests and answers against the specification; returns what is wrong, in words."""

    def __init__(self) -> None:
        self.api = _openapi()

    def request_errors(self, request: ApiRequest) -> tuple[list[str], bool]:
        """The request's violations, and whether one of them is missing/invalid authentication."""
        errors = list(self.api.iter_request_errors(request))
        return [_describe(e) for e in errors], any(isinstance(e, SecurityValidationError) for e in errors)

    def response_errors(self, request: ApiRequest, response: ApiResponse) -> list[str]:
        return [_describe(e) for e in self.api.iter_response_errors(request, response)]
