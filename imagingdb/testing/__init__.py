"""Helpers for testing imagingdb and its plugins.

- :func:`check_storage_backend` (:mod:`.storage`): a storage backend checked
  against every rule imagingdb relies on, naming the rule it breaks.

Importing this package imports no numpy or tifffile.
"""

from .storage import StorageContractError, check_storage_backend

__all__ = ["StorageContractError", "check_storage_backend"]
