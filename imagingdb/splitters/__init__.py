"""Built-in splitters: format plugins turning a source file or folder into frames.

Each module defines a :class:`imagingdb.acquisition.Splitter` and a pluggy
``register_splitters`` hook implementation, so built-in and third-party formats
are registered the same way. Modules import numpy and tifffile lazily.
"""
