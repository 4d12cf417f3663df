"""The OME-Zarr 0.5 store of a frames dataset: its zarr.json documents, and what they say.

:mod:`imagingdb.layout` names the store's keys (an HCS plate of one row, a
well per position, one image per well, as iohub writes multi-position
acquisitions); the frames themselves are chunks that the ome-zarr codec
encodes (:mod:`imagingdb.codecs.blosc`). This module writes the rest: the
Zarr v3 metadata of the plate, row, wells, images and arrays, with the
axes ``t, c, z, y, x``, the physical scales and time step the acquisition
recorded (:mod:`imagingdb.calibration`), and the ``omero`` channel names,
colours and display windows.

The documents are written by imagingdb itself, through its storage backends,
after the chunks and before the dataset's row is committed, so that an upload
stays atomic (nothing of a store is visible before the commit names its
folder) and chunks move at the codec's speed. zarr-python reads them, and
ome-zarr-models validates them, in the tests. The same writer serves uploads,
``download`` of an ome-zarr dataset and ``export --to ome-zarr``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

from . import layout
from .calibration import Calibration

if TYPE_CHECKING:
    import numpy as np

OME_ZARR_VERSION = "0.5"
AXES = ("t", "c", "z", "y", "x")
_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
#: colours of channels whose metadata names none: OMERO's, by channel index
_DEFAULT_COLORS = ("FFFFFF", "00FF00", "FF00FF", "00FFFF", "FFFF00", "FF0000", "0000FF")
#: every n-th pixel of a frame (both ways) seen by the display windows: 1/256 of the pixels
_WINDOW_STRIDE = 16


@dataclass
class StoreSpec:
    """What an OME-Zarr store of frames holds: enough to write its every zarr.json."""

    name: str  # the plate's name: the dataset ID
    positions: list[int]  # the position indexes, each a well (column) of the plate
    shape: tuple[int, int, int, int, int]  # (T, C, Z, Y, X) of every position's array
    dtype: str  # numpy dtype name of the pixels
    channel_names: list[str]  # C labels, in channel order
    calibration: Calibration = field(default_factory=Calibration)
    #: channel (store index) -> (min, max) of the pixels seen; else the calibration's window
    windows: dict[int, tuple[float, float]] = field(default_factory=dict)


def _document(node_type: str, attributes: dict[str, Any]) -> dict[str, Any]:
    return {"zarr_format": 3, "node_type": node_type, "attributes": attributes}


def _ome(**content: Any) -> dict[str, Any]:
    return {"ome": {"version": OME_ZARR_VERSION, **content}}


def array_document(spec: StoreSpec) -> dict[str, Any]:
    """The zarr.json of one position's array: (T, C, Z, Y, X), one chunk per frame."""
    import numpy as np

    from .codecs.blosc import zarr_codecs

    dtype = np.dtype(spec.dtype)
    document = _document("array", {})
    document.update({
        "shape": list(spec.shape), "data_type": dtype.name,
        "chunk_grid": {"name": "regular",
                       "configuration": {"chunk_shape": [1, 1, 1, *spec.shape[3:]]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0.0 if dtype.kind == "f" else 0,
        "codecs": zarr_codecs(dtype), "dimension_names": list(AXES),
        "storage_transformers": [],
    })
    return document


def image_document(spec: StoreSpec, position: int) -> dict[str, Any]:
    """The zarr.json of one position's image: multiscales (one level) and omero."""
    scales = spec.calibration.scales
    axes = []
    for axis in AXES:
        entry: dict[str, Any] = {"name": axis, "type": _AXIS_TYPES[axis]}
        if axis in scales:
            entry["unit"] = scales[axis][1]
        axes.append(entry)
    scale = [scales[axis][0] if axis in scales else 1.0 for axis in AXES]
    multiscale = {"name": f"{spec.name} position {position}", "axes": axes,
                  "datasets": [{"path": layout.ZARR_LEVEL, "coordinateTransformations": [
                      {"type": "scale", "scale": scale}]}]}
    return _document("group", _ome(multiscales=[multiscale], omero=_omero(spec)))


def _omero(spec: StoreSpec) -> dict[str, Any]:
    import numpy as np

    dtype = np.dtype(spec.dtype)
    channels = []
    for index, label in enumerate(spec.channel_names):
        seen = spec.windows.get(index) or spec.calibration.windows.get(index)
        if dtype.kind in "ui":
            lowest, highest = float(np.iinfo(dtype).min), float(np.iinfo(dtype).max)
        else:
            lowest, highest = seen if seen else (0.0, 1.0)
        start, end = seen if seen else (lowest, highest)
        color = spec.calibration.colors.get(index) or _DEFAULT_COLORS[index % len(_DEFAULT_COLORS)]
        channels.append({"label": label, "color": color, "active": True,
                         "window": {"min": lowest, "max": highest,
                                    "start": float(start), "end": float(max(end, start))}})
    return {"channels": channels, "rdefs": {"model": "color"}}


def plate_document(spec: StoreSpec) -> dict[str, Any]:
    """The root zarr.json: a plate of one row with a well per position."""
    columns = [str(p) for p in spec.positions]
    return _document("group", _ome(plate={
        "name": spec.name, "rows": [{"name": layout.ZARR_ROW}],
        "columns": [{"name": name} for name in columns],
        "wells": [{"path": f"{layout.ZARR_ROW}/{name}", "rowIndex": 0, "columnIndex": index}
                  for index, name in enumerate(columns)],
        "field_count": 1}))


def well_document() -> dict[str, Any]:
    return _document("group", _ome(well={"images": [{"path": layout.ZARR_FIELD}]}))


def document_tree(spec: StoreSpec) -> dict[str, dict[str, Any]]:
    """Every zarr.json of the store, by key in it (:func:`imagingdb.layout.zarr_document_names`),
    as the mappings :func:`documents` encodes."""
    found: dict[str, dict[str, Any]] = {
        layout.ZARR_DOCUMENT: plate_document(spec),
        f"{layout.ZARR_ROW}/{layout.ZARR_DOCUMENT}": _document("group", {}),
    }
    array = array_document(spec)
    for position in spec.positions:
        well, image, array_name = layout.zarr_position_document_names(position)
        found[well] = well_document()
        found[image] = image_document(spec, position)
        found[array_name] = array
    return found


def documents(spec: StoreSpec) -> dict[str, bytes]:
    """Every zarr.json of the store, by key in it, as the bytes stored."""
    return {key: _encoded(doc) for key, doc in document_tree(spec).items()}


def _encoded(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def renamed_document(data: bytes, old: str, new: str) -> bytes:
    """A stored zarr.json of dataset ``old``'s store as it reads once the dataset is ``new``:
    the plate's name and each image's multiscale name say the dataset ID (:func:`documents`);
    everything else (channels, windows, scales) is kept as stored. A document that is no
    JSON object, or names no ID, comes back unchanged."""
    try:
        document = json.loads(data)
        ome = document["attributes"]["ome"]
    except (ValueError, KeyError, TypeError):
        return data
    changed = False
    if isinstance(ome, dict):
        plate = ome.get("plate")
        if isinstance(plate, dict) and plate.get("name") == old:
            plate["name"], changed = new, True
        for multiscale in ome.get("multiscales") or []:
            name = multiscale.get("name") if isinstance(multiscale, dict) else None
            if isinstance(name, str) and (name == old or name.startswith(f"{old} ")):
                multiscale["name"], changed = new + name[len(old):], True
    return _encoded(document) if changed else data


def locating_parts(document: Any) -> Any:
    """What of a zarr.json tells a reader where the frames are and how to decode them: an
    array's every field but its attributes; a group's node type, OME-Zarr version, plate
    wells, well images, multiscale axes and dataset paths (not names, colours or windows)."""
    if not isinstance(document, dict):
        return None
    if document.get("node_type") == "array":
        return {key: value for key, value in document.items() if key != "attributes"}
    attributes = document.get("attributes")
    ome = attributes.get("ome") if isinstance(attributes, dict) else None
    ome = ome if isinstance(ome, dict) else {}
    plate, well = ome.get("plate") or {}, ome.get("well") or {}
    return {
        "zarr_format": document.get("zarr_format"), "node_type": document.get("node_type"),
        "version": ome.get("version"),
        "rows": [row.get("name") for row in plate.get("rows", [])],
        "columns": [column.get("name") for column in plate.get("columns", [])],
        "wells": [(w.get("path"), w.get("rowIndex"), w.get("columnIndex"))
                  for w in plate.get("wells", [])],
        "images": [image.get("path") for image in well.get("images", [])],
        "multiscales": [([axis.get("name") for axis in m.get("axes", [])],
                         [d.get("path") for d in m.get("datasets", [])])
                        for m in ome.get("multiscales", [])],
    }


def document_problem(data: bytes, expected: dict[str, Any]) -> Optional[str]:
    """What is wrong with a stored zarr.json of a dataset's store, against the one imagingdb
    would write for its rows (``expected``, of :func:`document_tree`); None if a reader finds
    the frames where the rows say they are."""
    try:
        stored = json.loads(data)
    except ValueError as exc:
        return f"it is not valid zarr.json metadata ({exc})"
    try:
        differs = locating_parts(stored) != locating_parts(expected)
    except (AttributeError, TypeError) as exc:
        return f"it is not valid zarr.json metadata ({type(exc).__name__}: {exc})"
    if differs:
        what = "array" if stored.get("node_type") == "array" else "group"
        return (f"it no longer describes the frames its rows hold (readers would not find them "
                f"there): its {what} metadata differs from what the rows imply")
    return None


def stored_windows(document: bytes) -> dict[int, tuple[float, float]]:
    """The display windows (start, end) an image zarr.json records, by channel index."""
    try:
        channels = json.loads(document)["attributes"]["ome"]["omero"]["channels"]
        return {index: (float(c["window"]["start"]), float(c["window"]["end"]))
                for index, c in enumerate(channels)}
    except (ValueError, KeyError, TypeError):
        return {}


class WindowTracker:
    """The range of pixel values seen per channel, from a sparse sample of every frame:
    the display windows napari and Fiji open the store with. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[int, tuple[float, float]] = {}

    def add(self, channel: int, pixels: "np.ndarray") -> None:
        import math

        import numpy as np

        sample = pixels[::_WINDOW_STRIDE, ::_WINDOW_STRIDE]
        if sample.dtype.kind == "f":
            sample = sample[np.isfinite(sample)]  # NaN and infinities have no place in JSON
            if sample.size == 0:
                return
        low, high = float(sample.min()), float(sample.max())
        if math.isfinite(low) and math.isfinite(high):
            self.widen(channel, low, high)

    def widen(self, channel: int, low: float, high: float) -> None:
        """Make ``channel``'s range cover ``low`` to ``high``."""
        with self._lock:
            known = self._seen.get(channel)
            self._seen[channel] = (low, high) if known is None else (
                min(known[0], low), max(known[1], high))

    def windows(self) -> dict[int, tuple[float, float]]:
        with self._lock:
            return dict(self._seen)


def grid_shape(nbr: Sequence[int], highest: Sequence[Optional[int]]) -> tuple[int, ...]:
    """Each axis's size: its recorded count, or more if a frame lies beyond it."""
    return tuple(max(n, (h + 1) if h is not None else 0) for n, h in zip(nbr, highest))
