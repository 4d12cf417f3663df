"""Checking every frame's metadata against the upload's JSON Schema (``meta_schema``).

The check runs in the upload's metadata-only pass, before anything is written.
Metadata that :func:`imagingdb.quick_schema.is_valid` accepts passes without
importing jsonschema (~0.1 s); anything else goes to jsonschema for the exact
error, which names the file, the frame and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from . import quick_schema
from .acquisition import Frame
from .errors import InputError


class MetaValidator:
    """Checks each frame's metadata against one JSON Schema.

    ``trusted``: the schema is a splitter's own, known to be valid, so it is
    not checked (nor jsonschema imported) unless a frame needs an error message.
    An upload config's schema is checked at once: an invalid one fails every row alike.
    """

    def __init__(self, schema: dict[str, Any], config_path: Optional[Path], *,
                 trusted: bool = False):
        self.schema = schema
        self._config_path = config_path
        self._validator = None if trusted else _checked_validator(schema, config_path)

    def check(self, frame: Frame, source: Path) -> None:
        """Raise an InputError naming the file, the frame and the key if ``frame`` breaks the schema."""
        if quick_schema.is_valid(self.schema, frame.metadata):
            return  # the common case, without importing jsonschema's referencing (~60 ms)
        from referencing.exceptions import Unresolvable

        try:
            error = self._first_error(frame.metadata)
        except Unresolvable as exc:  # a $ref to nowhere, or to a URL: no schema is fetched
            raise InputError(f"{self._config_path}: meta_schema has a $ref that cannot be "
                             f"resolved ({exc}); imagingdb fetches no "
                             "remote schemas, so put every definition in the schema") from None
        except RecursionError:  # {"$ref": "#"}: a schema that is only a reference to itself
            raise InputError(f"{self._config_path}: meta_schema refers to itself without end "
                             "(a $ref that leads back to itself)") from None
        if error is None:
            return
        if error.validator in ("anyOf", "oneOf") and error.context:
            # "matches none of the alternatives" names no key; the best alternative's error does
            import jsonschema

            error = jsonschema.exceptions.best_match(error.context)
        key = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        if error.validator == "required":
            key = error.message.split("'")[1] if "'" in error.message else key
        i = frame.index
        where = f"{source}: {frame.origin}," if frame.origin else f"{source}:"
        raise InputError(
            f"{where} frame (c={i.channel}, z={i.slice}, t={i.time}, p={i.position}) metadata "
            f"breaks meta_schema at key {key!r}: {error.message}"
        )

    def _first_error(self, metadata: Any):
        """The first jsonschema error of ``metadata``, None if it is valid."""
        if quick_schema.is_valid(self.schema, metadata):
            return None
        if self._validator is None:
            import jsonschema

            self._validator = jsonschema.validators.validator_for(self.schema)(self.schema)
        return next(iter(self._validator.iter_errors(metadata)), None)


def _checked_validator(schema: dict[str, Any], config_path: Optional[Path]):
    import jsonschema

    try:
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InputError(f"{config_path}: meta_schema is not a valid JSON Schema: "
                         f"{exc.message}") from None
    return validator_class(schema)
