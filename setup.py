"""The one thing pyproject.toml cannot declare stably: the optional QC kernel.

imagingdb/_qc.c computes a frame's QC figures in one pass (see its header). ``optional``:
where it does not compile (no C compiler), the install goes on without it and
imagingdb.qc computes the same figures with numpy.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("imagingdb._qc", ["imagingdb/_qc.c"], optional=True)])
