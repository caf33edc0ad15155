"""Generates the CustomResourceDefinitions from the API models.

The models are the single source of truth. Rather than post-processing pydantic's JSON
Schema (which uses `$ref`, `anyOf` with `null` and other shapes that Kubernetes' structural
schemas forbid), this walks the models' fields directly and emits exactly the subset of
OpenAPI v3 that the API server accepts: every field typed and described, defaults where the
model has them, ranges, enumerations and patterns, and each `Invariant` as a CEL rule.
"""

from __future__ import annotations

import inspect
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .base import GROUP, VERSION, ApiModel
from .kinds import KINDS, Kind

Schema = dict[str, Any]


def crd_manifest(kind: Kind) -> dict[str, Any]:
    """The `apiextensions.k8s.io/v1` CustomResourceDefinition of one kind."""
    spec = model_schema(kind.spec, with_defaults=True)
    status = model_schema(kind.status, with_defaults=False)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": ["labelloop"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {
                            "name": c.name,
                            "type": c.type,
                            "jsonPath": c.json_path,
                            "description": c.description,
                            **({"priority": c.priority} if c.priority else {}),
                        }
                        for c in kind.columns
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": kind.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {
                                    "type": "string",
                                    "description": "Versioned schema of this representation.",
                                },
                                "kind": {
                                    "type": "string",
                                    "description": "REST resource this object represents.",
                                },
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def model_schema(model: type[BaseModel], *, with_defaults: bool) -> Schema:
    """The structural schema of a model: an object with one property per field."""
    properties: dict[str, Schema] = {}
    required: list[str] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        if not field.description:
            raise ValueError(f"{model.__name__}.{name} has no description (a docstring below it)")
        # Description first: it is what a person reads in the file and in `kubectl explain`.
        prop = {
            "description": " ".join(field.description.split()),
            **_type_schema(field.annotation, [*field.metadata, field], with_defaults),
        }
        if field.is_required():
            required.append(key)
        elif with_defaults:
            default = _default(field)
            if default is not None:
                prop["default"] = default
        properties[key] = prop
    schema: Schema = {"type": "object"}
    if model.__doc__:
        schema["description"] = " ".join(inspect.cleandoc(model.__doc__).split())
    schema["properties"] = properties
    if required:
        schema["required"] = required
    rules = [
        {
            "rule": i.cel,
            "message": i.message,
            **({"fieldPath": i.field_path} if i.field_path else {}),
        }
        for i in getattr(model, "invariants", ())
    ] + [{"rule": t.cel, "message": t.message} for t in getattr(model, "transition_rules", ())]
    if rules:
        schema["x-kubernetes-validations"] = rules
    return schema


def _default(field: FieldInfo) -> Any:
    """The wire form of a field's default, or None when it has none worth stating."""
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return None
    else:
        value = field.default
    if isinstance(value, ApiModel):
        # The whole object, not `{}`: the API server checks a default against the CEL rules
        # without filling in the nested defaults first.
        return value.to_wire()
    return value


def _type_schema(tp: Any, metadata: list[Any], with_defaults: bool) -> Schema:
    origin = get_origin(tp)
    if origin is Annotated:
        base, *extra = get_args(tp)
        return _type_schema(base, [*extra, *metadata], with_defaults)
    if origin in (Union, types.UnionType):
        return _union_schema(
            [a for a in get_args(tp) if a is not type(None)], metadata, with_defaults
        )
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        schema = model_schema(tp, with_defaults=with_defaults)
        del schema["description"]  # the field's own description says it in context
    elif origin is Literal:
        values = list(get_args(tp))
        schema = {"type": _scalar_type(type(values[0])), "enum": values}
    elif origin is list:
        (item,) = get_args(tp)
        schema = {"type": "array", "items": _type_schema(item, [], with_defaults)}
    elif origin is dict:
        _, value = get_args(tp)
        if value is Any:
            schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        else:
            schema = {
                "type": "object",
                "additionalProperties": _type_schema(value, [], with_defaults),
            }
    elif tp is Any:
        schema = {"x-kubernetes-preserve-unknown-fields": True}
    else:
        schema = {"type": _scalar_type(tp)}
    _apply_constraints(schema, metadata)
    return schema


def _union_schema(members: list[Any], metadata: list[Any], with_defaults: bool) -> Schema:
    if len(members) == 1:
        return _type_schema(members[0], metadata, with_defaults)
    kinds = {_scalar_kind(m) for m in members}
    if kinds == {"integer", "string"}:
        schema: Schema = {"x-kubernetes-int-or-string": True}
        _apply_constraints(schema, metadata)
        return schema
    raise TypeError(f"unsupported union {members}: a structural schema needs one type")


def _scalar_kind(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return _scalar_type(type(get_args(tp)[0]))
    if get_origin(tp) is Annotated:
        return _scalar_kind(get_args(tp)[0])
    return _scalar_type(tp)


def _scalar_type(tp: Any) -> str:
    # bool before int: bool is a subclass of int.
    for python_type, openapi_type in (
        (bool, "boolean"),
        (int, "integer"),
        (float, "number"),
        (str, "string"),
    ):
        if isinstance(tp, type) and issubclass(tp, python_type):
            return openapi_type
    raise TypeError(f"unsupported field type {tp!r}")


def _apply_constraints(schema: Schema, metadata: list[Any]) -> None:
    is_array = schema.get("type") == "array"
    for m in metadata:
        if isinstance(m, FieldInfo):
            _apply_constraints(schema, list(m.metadata))
            if isinstance(m.json_schema_extra, dict):
                schema.update(m.json_schema_extra)
        elif isinstance(m, annotated_types.Ge):
            schema["minimum"] = m.ge
        elif isinstance(m, annotated_types.Gt):
            schema["minimum"] = m.gt
            schema["exclusiveMinimum"] = True
        elif isinstance(m, annotated_types.Le):
            schema["maximum"] = m.le
        elif isinstance(m, annotated_types.Lt):
            schema["maximum"] = m.lt
            schema["exclusiveMaximum"] = True
        elif isinstance(m, annotated_types.MinLen):
            schema["minItems" if is_array else "minLength"] = m.min_length
        elif isinstance(m, annotated_types.MaxLen):
            schema["maxItems" if is_array else "maxLength"] = m.max_length
        elif getattr(m, "pattern", None):
            schema["pattern"] = m.pattern


HEADER = "# Generated by `make crds` from operator/labelloop/api; do not edit.\n"


def render_crds() -> dict[str, str]:
    """File name → YAML text of each CRD, as `make crds` writes them into `crds/`."""
    return {
        f"{GROUP}_{kind.plural}.yaml": HEADER
        + yaml.safe_dump(crd_manifest(kind), sort_keys=False, width=100, allow_unicode=True)
        for kind in KINDS
    }
