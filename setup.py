"""The optional compiled kernel of the large-signal excursion estimator (everything else: pyproject.toml).

``edgesense/speaker/_lsloop.c`` is built when a C compiler is there; without one (or if the build
fails) installation still succeeds and ``edgesense.speaker.largesignal`` uses its Python loop. The
kernel is bit-identical to that loop only without fused multiply-adds: -ffp-contract=off.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildExt(build_ext):
    """Adds the no-contraction flag for gcc/clang-style compilers (MSVC does not contract under /fp:precise)."""

    def build_extensions(self) -> None:
        if self.compiler.compiler_type != "msvc":
            for ext in self.extensions:
                ext.extra_compile_args = [*ext.extra_compile_args, "-ffp-contract=off"]
        super().build_extensions()


setup(
    ext_modules=[Extension("edgesense.speaker._lsloop", ["edgesense/speaker/_lsloop.c"], optional=True)],
    cmdclass={"build_ext": BuildExt},
)
