"""The one thing pyproject.toml does not say: lorac's optional C extension.

``lorac.scan._pixels`` holds the dataset scan's per-pixel loops (lorac/scan/_pixels.c). It is
optional: where no C compiler is, the install goes on without it and the scan computes the
same values with numpy, more slowly. setuptools calls the ``ext-modules`` table of
pyproject.toml experimental, hence this file.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("lorac.scan._pixels", ["lorac/scan/_pixels.c"], optional=True)])
