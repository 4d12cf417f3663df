"""Every hook a plugin can implement. Plugins mark implementations with::

    import pluggy
    hookimpl = pluggy.HookimplMarker("imagingdb")

The host passes a ``register`` callback, so it can validate names, refuse
duplicates and record which plugin provided what; hooks may gain keyword
arguments later without breaking plugins (pluggy passes only those asked for).
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("imagingdb")


@hookspec
def register_splitters(register):
    """Register splitter formats (the upload config's ``frames_format``).

    Call ``register(name, factory)`` for each; ``factory()`` returns an
    :class:`imagingdb.acquisition.Splitter`. Import heavy modules inside the
    splitter, not at plugin import, so the CLI starts fast.
    """


@hookspec
def claim_source(source):
    """Say whether one of this plugin's splitters reads ``source``.

    ``source`` is a :class:`pathlib.Path` to a file or a folder that exists.
    Return an :class:`imagingdb.acquisition.SourceClaim` (the ``frames_format``
    that reads it, what it is in words, how certain), or None when it is not
    this plugin's. ``frames_format: auto`` asks every plugin and uses the most
    certain claim; two formats equally certain are refused, naming both. An
    explicit ``frames_format`` is refused when another format claims the
    source as CERTAIN and it does not, so that no file is split against what
    it declares. Keep it cheap (headers and one folder listing, never pixels)
    and never raise for a source of another format: return None.
    """


@hookspec
def register_filename_parsers(register):
    """Register filename parsers (the upload config's ``filename_parser``).

    Call ``register(name, parse)`` for each; ``parse(file_name)`` returns a dict
    with any of ``channel_idx``, ``slice_idx``, ``time_idx``, ``pos_idx``,
    ``channel_name`` (frame indexes) and other metadata, or raises
    ``ValueError`` with a message stating the expected pattern when the name
    does not follow it.
    """


@hookspec
def register_storage_backends(register):
    """Register storage backends (the site config's ``storage.backend``).

    Call ``register(name, backend_class)`` for each; ``backend_class(**settings)``
    receives the storage section's other keys (a plugin's own settings arrive
    as one ``options`` dict) and returns an :class:`imagingdb.storage.StorageBackend`.
    """


@hookspec
def register_commands(cli):
    """Add commands to the CLI: ``cli`` is the root ``typer.Typer`` app."""
