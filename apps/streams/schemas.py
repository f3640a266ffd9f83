"""Optional server-side validation of chunks against their stream definition's JSON Schema.

Off by default: the SDK validates on both sides already. An operator turns it on per stream
definition (``validate`` in the admin); from then on an append to a JSON stream of that id
whose chunks do not match is rejected whole with 400 ``schema_violation``, naming the chunk and
the failing path. Compiled validators are cached by schema text.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from streamdash.core.errors import BadRequest, SchemaViolation


@functools.lru_cache(maxsize=256)
def _validator(schema_text: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_text))


def schema_text(schema: Any) -> str:
    return schema if isinstance(schema, str) else json.dumps(schema, sort_keys=True)


def chunk_type(schema: Any) -> str:
    """The chunk type a definition's schema describes, for people: its title (the SDK puts the
    type's name there, e.g. a pydantic model's), else its JSON type, else "any"."""
    if not isinstance(schema, dict):
        return "any" if schema in (None, True) else "nothing"
    title, kind = schema.get("title"), schema.get("type")
    if isinstance(title, str) and title:
        return title
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list) and all(isinstance(k, str) for k in kind):
        return " | ".join(kind)
    return "any"


def schema_pretty(schema: Any) -> str:
    """A schema as indented JSON, keys as stored (PostgreSQL's jsonb keeps its own order)."""
    return json.dumps(schema, indent=2, ensure_ascii=False)


def check_schema(schema: Any) -> None:
    """A definition's schema must itself be a valid JSON Schema."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise BadRequest(
            f"schema is not a valid JSON Schema: {exc.message}", field="schema"
        ) from None


def validate_chunks(schema: str, chunks: list[bytes]) -> None:
    validator = _validator(schema)
    for position, chunk in enumerate(chunks):
        try:
            value = json.loads(chunk)
        except ValueError:  # valid JSON Python cannot read: an integer of 4300+ digits
            raise SchemaViolation(
                f"Chunk {position} holds an integer of more than 4300 digits, which the "
                "stream's schema check cannot read; send it as a string.",
                chunk=position,
                path=[],
            ) from None
        error = best_match(validator.iter_errors(value))
        if error is not None:
            raise SchemaViolation(
                f"Chunk {position} does not match the stream's schema: {error.message}",
                chunk=position,
                path=list(error.absolute_path),
            )
