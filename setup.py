"""Build the compiled core, ``ocean._core``, from ``src/ocean/_core.pyx``.

Everything else about the package lives in ``pyproject.toml``. The core
``include``s one ``.pxi`` per kernel family (counters, lexer, column scans).
"""
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "ocean._core",
        ["src/ocean/_core.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
        },
    ),
)
