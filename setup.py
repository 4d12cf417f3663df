"""The one thing pyproject.toml cannot declare stably: the optional QC kernel.

imagingdb/_qc.c computes a frame's QC figures in one pass (see its header). ``optional``:
where it does not compile (no C compiler), the install goes on without it and
imagingdb.qc computes the same figures with numpy.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildExt(build_ext):
    """-O3 with gcc and clang, whatever the interpreter was built with: its loops are
    written for the vectoriser, which -O2 (Debian's Python) runs only where it is cheap."""

    def build_extensions(self) -> None:
        if self.compiler.compiler_type == "unix":
            for extension in self.extensions:
                extension.extra_compile_args = [*extension.extra_compile_args, "-O3"]
        super().build_extensions()


setup(ext_modules=[Extension("imagingdb._qc", ["imagingdb/_qc.c"], optional=True)],
      cmdclass={"build_ext": BuildExt})
