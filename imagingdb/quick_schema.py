"""Accept valid metadata under a simple JSON Schema without importing jsonschema.

Every frame's metadata is checked against a schema before an upload writes
anything (SPEC: meta_schema). jsonschema does it right, but importing it costs
~0.1 s of start-up (it pulls in attrs, referencing, rpds, rfc3339...), paid
by every upload although the built-in schemas are a handful of ``required``
keys and ``type`` checks. :func:`is_valid` evaluates that subset of JSON
Schema itself and answers only when it can be sure:

- True: the instance is valid (the keywords used are all evaluated here,
  with jsonschema's semantics: 1.0 is an integer, True is not);
- None: either invalid or using a keyword not handled here. The caller then
  asks jsonschema, which gives the exact error message.

So a valid frame never imports jsonschema, and an invalid one is reported
exactly as before.
"""

from __future__ import annotations

from typing import Any, Optional

# Keywords that only annotate: they never make an instance invalid.
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "examples",
                          "default"})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": _is_number,
    "integer": lambda v: _is_number(v) and (isinstance(v, int) or v.is_integer()),
}


def is_valid(schema: Any, instance: Any) -> Optional[bool]:
    """True if ``instance`` is certainly valid under ``schema``; None if not known to be."""
    if schema is True or schema == {}:
        return True
    if not isinstance(schema, dict):
        return None
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        check = _KEYWORDS.get(keyword)
        if check is None or not check(value, instance):
            return None
    return True


def _type(wanted: Any, instance: Any) -> bool:
    names = [wanted] if isinstance(wanted, str) else wanted
    if not isinstance(names, list) or not all(name in _TYPES for name in names):
        return False  # an unknown type name: let jsonschema say what is wrong
    return any(_TYPES[name](instance) for name in names)


def _required(keys: Any, instance: Any) -> bool:
    if not isinstance(instance, dict):
        return True
    return isinstance(keys, list) and all(key in instance for key in keys)


def _properties(properties: Any, instance: Any) -> bool:
    if not isinstance(properties, dict):
        return False
    if not isinstance(instance, dict):
        return True
    return all(is_valid(subschema, instance[key]) is True
               for key, subschema in properties.items() if key in instance)


def _any_of(subschemas: Any, instance: Any) -> bool:
    return isinstance(subschemas, list) and any(
        is_valid(subschema, instance) is True for subschema in subschemas)


def _all_of(subschemas: Any, instance: Any) -> bool:
    return isinstance(subschemas, list) and all(
        is_valid(subschema, instance) is True for subschema in subschemas)


def _minimum(bound: Any, instance: Any) -> bool:
    return _is_number(bound) and (not _is_number(instance) or instance >= bound)


def _maximum(bound: Any, instance: Any) -> bool:
    return _is_number(bound) and (not _is_number(instance) or instance <= bound)


def _min_length(bound: Any, instance: Any) -> bool:
    return (isinstance(bound, int) and not isinstance(bound, bool)
            and (not isinstance(instance, str) or len(instance) >= bound))


# anyOf fails only when no branch is certainly valid; a branch that is merely
# unknown then sends the instance to jsonschema, which is always right.
_KEYWORDS = {
    "type": _type,
    "required": _required,
    "properties": _properties,
    "anyOf": _any_of,
    "allOf": _all_of,
    "minimum": _minimum,
    "maximum": _maximum,
    "minLength": _min_length,
}
