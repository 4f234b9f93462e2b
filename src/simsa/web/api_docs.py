"""The API's reference page, drawn on the server from the app's own OpenAPI schema: readable without scripts and
without fetching a documentation bundle from elsewhere (the site's content security policy allows neither)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Field:
    name: str
    where: str          # path, query, header or body
    type: str
    required: bool
    description: str


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    description: str
    token: bool          # needs an API token
    fields: tuple[Field, ...]
    body: str | None     # the request body's schema name
    responses: tuple[tuple[str, str], ...]

    @property
    def anchor(self) -> str:
        return f"{self.method}-{self.path}".replace("/", "-").replace("{", "").replace("}", "")


@dataclass(frozen=True)
class Group:
    tag: str
    operations: tuple[Operation, ...]


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list[{_type(schema.get('items') or {})}]"
    return str(schema.get("type", "any"))


def _body_fields(schema: dict[str, Any], components: dict[str, Any]) -> tuple[str | None, list[Field]]:
    ref = schema.get("$ref")
    if not ref:
        return None, []
    name = ref.rsplit("/", 1)[-1]
    model = components.get(name) or {}
    required = set(model.get("required") or ())
    fields = [Field(prop, "body", _type(spec), prop in required, str(spec.get("description") or ""))
              for prop, spec in (model.get("properties") or {}).items()]
    return name, fields


def reference(schema: dict[str, Any]) -> list[Group]:
    """The operations of an OpenAPI document grouped by tag, in the order the app declares them."""
    components = (schema.get("components") or {}).get("schemas") or {}
    groups: dict[str, list[Operation]] = {}
    for path, item in (schema.get("paths") or {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            fields = [Field(p["name"], p.get("in", ""), _type(p.get("schema") or {}), bool(p.get("required")),
                            str(p.get("description") or "")) for p in op.get("parameters") or ()]
            body_schema = (((op.get("requestBody") or {}).get("content") or {}).get("application/json") or {})
            body, body_fields = _body_fields(body_schema.get("schema") or {}, components)
            answers = (op.get("responses") or {}).items()
            responses = tuple((code, str(r.get("description") or "")) for code, r in answers)
            groups.setdefault((op.get("tags") or ["other"])[0], []).append(Operation(
                method=method.upper(), path=path, summary=str(op.get("summary") or ""),
                description=str(op.get("description") or ""), token=bool(op.get("security")),
                fields=tuple(fields + body_fields), body=body, responses=responses))
    return [Group(tag, tuple(ops)) for tag, ops in groups.items()]
