"""Twilio's own OpenAPI description of its REST API (``tests/data/contracts/twilio_api_v2010.json``,
from Twilio's twilio-oai project), as the Twilio stand-in (``tests/twilio_standin.py``) holds every
request and response to it: operations found by path template, parameters coerced from their
form strings and validated, the rules the schema states only in words."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jsonschema import Draft7Validator, FormatChecker

__all__ = ["CONTRACT_PATH", "MESSAGES", "MESSAGE_BY_SID", "OpenApiContract", "load_contract"]

CONTRACT_PATH = Path(__file__).parent / "data" / "contracts" / "twilio_api_v2010.json"
MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
MESSAGE_BY_SID = "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json"


@dataclass(frozen=True)
class _Match:
    template: str
    method: str
    operation: dict[str, Any] | None  # None: the path exists, the method does not
    params: dict[str, str]


class OpenApiContract:
    """Finds operations by path template and checks requests and responses against them."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._paths: dict[str, Any] = spec["paths"]
        self._components = _json_schema(spec["components"])
        # Fewest parameters first, so a literal segment wins over a {Sid} that would also match.
        templates = sorted(self._paths, key=lambda t: t.count("{"))
        self._routes = [(_template_regex(t), t) for t in templates]

    def find(self, method: str, path: str) -> _Match | None:
        for regex, template in self._routes:
            found = regex.fullmatch(path)
            if found:
                operation = self._paths[template].get(method.lower())
                return _Match(template, method, operation, found.groupdict())
        return None

    def check_request(
        self, match: _Match, query: str, content_type: str | None, raw: bytes
    ) -> tuple[dict[str, Any], list[str]]:
        """Returns the coerced form body and every way the request breaks the contract."""
        operation = match.operation or {}
        parameters = operation.get("parameters", [])
        problems: list[str] = []
        for param in (p for p in parameters if p["in"] == "path"):
            value = match.params.get(param["name"], "")
            problems += self._errors(param["schema"], value, f"path {param['name']}")
        query_schema = _object_schema([p for p in parameters if p["in"] == "query"])
        problems += self._check_fields(query_schema, parse_qs(query, keep_blank_values=True))[1]
        form: dict[str, Any] = {}
        body_spec = operation.get("requestBody")
        if body_spec is not None:
            form, more = self._check_form(body_spec, content_type, raw)
            problems += more
        elif raw:
            problems.append("this operation takes no request body")
        return form, problems + _operation_rules(match, form)

    def check_response(self, match: _Match, status: int, payload: Any) -> list[str]:
        documented = (match.operation or {}).get("responses", {}).get(str(status))
        if documented is None:
            return [f"HTTP {status} is not a documented response"]
        schema = documented["content"]["application/json"]["schema"]
        problems = self._errors(schema, payload, "response")
        # Twilio sends every property of a resource (null when unknown): check the full set.
        expected = set(self._resolve(schema).get("properties", {}))
        if isinstance(payload, dict) and set(payload) != expected:
            problems.append(f"response properties differ from the spec: {set(payload) ^ expected}")
        return problems

    def _check_form(
        self, body_spec: dict[str, Any], content_type: str | None, raw: bytes
    ) -> tuple[dict[str, Any], list[str]]:
        content = body_spec.get("content", {})
        media_type = (content_type or "").split(";")[0].strip().lower()
        if media_type not in content:
            return {}, [f"Content-Type {content_type!r}; the operation takes {sorted(content)}"]
        schema = {**content[media_type]["schema"], "additionalProperties": False}
        return self._check_fields(
            schema, parse_qs(raw.decode(errors="replace"), keep_blank_values=True)
        )

    def _check_fields(
        self, schema: dict[str, Any], fields: dict[str, list[str]]
    ) -> tuple[dict[str, Any], list[str]]:
        """Coerce form/query strings to the types the schema names, then validate them."""
        properties = schema.get("properties", {})
        coerced: dict[str, Any] = {}
        problems: list[str] = []
        for name, values in fields.items():
            prop = self._resolve(properties.get(name, {}))
            if _type_of(prop) == "array":
                coerced[name] = [_coerce(self._resolve(prop.get("items", {})), v) for v in values]
            elif len(values) > 1:
                problems.append(f"{name}: given {len(values)} times but is not an array")
            else:
                coerced[name] = _coerce(prop, values[0])
        return coerced, problems + self._errors(schema, coerced, "parameter")

    def _errors(self, schema: dict[str, Any], instance: Any, what: str) -> list[str]:
        # $refs point at #/components/...: validate inside a root that carries them.
        root = {"components": self._components, "allOf": [_json_schema(schema)]}
        validator = Draft7Validator(root, format_checker=_FORMATS)
        return [
            f"{what} {'/'.join(map(str, e.absolute_path)) or ''}: {e.message}".replace(" :", ":")
            for e in validator.iter_errors(instance)
        ]

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = {"components": self._components}
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        return schema


@functools.cache
def load_contract() -> OpenApiContract:
    return OpenApiContract(json.loads(CONTRACT_PATH.read_text(encoding="utf-8")))


def _operation_rules(match: _Match, form: dict[str, Any]) -> list[str]:
    """Rules the schema cannot say, taken from the Messages create operation's descriptions."""
    if (match.template, match.method) != (MESSAGES, "POST"):
        return []
    problems = []
    if not (form.get("From") or form.get("MessagingServiceSid")):
        problems.append("Messages.json: one of From or MessagingServiceSid is required")
    if not any(form.get(name) for name in ("Body", "MediaUrl", "ContentSid")):
        problems.append("Messages.json: one of Body, MediaUrl or ContentSid is required")
    return problems


def _template_regex(template: str) -> re.Pattern[str]:
    pattern = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
    return re.compile(re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", pattern))


def _object_schema(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {p["name"]: p["schema"] for p in parameters},
        "required": [p["name"] for p in parameters if p.get("required")],
        "additionalProperties": False,
    }


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: ``nullable`` becomes a null type, and formats Twilio
    marks ``x-twilio.ignoreFormat`` are dropped."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    extension = node.get("x-twilio")
    if isinstance(extension, dict) and extension.get("ignoreFormat"):
        out.pop("format", None)
    if node.get("nullable") is True:
        if "$ref" in out:
            return {"anyOf": [out, {"type": "null"}]}
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _type_of(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        return next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None


def _coerce(schema: dict[str, Any], value: str) -> Any:
    """A form string as the schema's type; left as a string (so jsonschema says why) if not."""
    kind = _type_of(schema)
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    if kind == "integer" and re.fullmatch(r"-?\d+", value):
        return int(value)
    if kind == "number" and re.fullmatch(r"-?\d+(\.\d+)?", value):
        return float(value)
    return value


# Twilio's "phone-number" also covers channel addresses (whatsapp:+1...), short codes and
# alphanumeric sender IDs (see the From description in the Messages create operation).
_PHONE = re.compile(
    r"\+[1-9]\d{1,14}"  # E.164
    r"|[a-z]+:\S+"  # channel address
    r"|\d{3,8}"  # short code
    r"|(?=[A-Za-z0-9 ]*[A-Za-z])[A-Za-z0-9 ]{1,11}"  # alphanumeric sender ID
)
_FORMAT_CHECKS: dict[str, Callable[[str], object]] = {
    "phone-number": _PHONE.fullmatch,
    "uri": lambda v: urlsplit(v).scheme in ("http", "https") and urlsplit(v).netloc,
    "date-time": datetime.fromisoformat,
    "date-time-rfc-2822": parsedate_to_datetime,
    "currency": re.compile(r"[A-Z]{3}").fullmatch,
}
# Only these formats are checked; others in the spec (uri-map, twiml ...) pass, as jsonschema
# does for any format it has no checker for.
_FORMATS = FormatChecker(formats=())
for _name, _check in _FORMAT_CHECKS.items():
    _FORMATS.checks(_name, raises=(TypeError, ValueError))(
        functools.partial(lambda check, v: not isinstance(v, str) or bool(check(v)), _check)
    )
