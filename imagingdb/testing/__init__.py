"""Helpers for testing imagingdb and its plugins: test data and contract checks.

Test data that looks and is laid out like what microscopes and Fiji write,
each writer reproducing its software's own structure (and checked against
real files in imagingdb's tests):

- :mod:`.scenes`: frame content (``FluorescenceScene``, ``SCMOSScene``,
  ``fluorescence_frame``, ``rgb_frame``);
- :mod:`.micromanager`: Micro-Manager 1.4 and 2.0 OME-TIFFs
  (``write_mm_ometiff``) and image-file folders (``write_mm_tif_folder``,
  ``write_mm_position_folders``, ``cut_metadata_txt``), ``write_demo_acquisition``;
- :mod:`.imagej`: ImageJ/Fiji hyperstacks, plain and tifffile stacks, image
  sequences (``write_imagej_hyperstack``, ``write_fiji_hyperstack``,
  ``write_fiji_image_sequence``, ``write_tiff_stack``, ``write_tifffile_stack``);
- :mod:`.ome`: OME-TIFFs as Bio-Formats and tifffile write them;
- :mod:`.storage`: :func:`check_storage_backend`, a storage backend checked
  against every rule imagingdb relies on;
- :mod:`.fixtures`: pytest fixtures (``pytest_plugins = ["imagingdb.testing.fixtures"]``).

Every name above can be imported from this package; importing the package
itself imports no numpy or tifffile (the writers' modules do, when used).
"""

from __future__ import annotations

import importlib
from typing import Any

from .storage import StorageContractError, check_storage_backend

_LAZY = {
    "scenes": ("FluorescenceScene", "SCMOSScene", "CameraModel", "ChannelLook", "SCMOS_CHANNELS",
               "fluorescence_frame", "rgb_frame", "intensity_levels"),
    "micromanager": ("write_mm_ometiff", "write_mm_tif_folder", "write_mm_position_folders",
                     "cut_metadata_txt", "write_demo_acquisition", "mm_image_file_name"),
    "imagej": ("write_imagej_hyperstack", "write_tiff_stack", "write_fiji_hyperstack",
               "write_fiji_image_sequence", "write_tifffile_stack", "imagej_escaped"),
    "ome": ("write_bioformats_ometiff", "write_tifffile_ometiff"),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}

__all__ = ["StorageContractError", "check_storage_backend", *_MODULE_OF]


def __getattr__(name: str) -> Any:
    """The test-data writers, imported (with numpy and tifffile) when first asked for."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
