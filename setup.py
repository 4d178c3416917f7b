"""The one thing pyproject.toml does not say: lorac's optional C extension.

``lorac.scan._native`` holds the dataset scan's hot loops (lorac/scan/_native.c): the
per-pixel scores and the stat of every file of a folder. It is optional: where no C compiler
is, the install goes on without it and the scan computes the same values with Python and
numpy, more slowly. setuptools calls the ``ext-modules`` table of
pyproject.toml experimental, hence this file.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("lorac.scan._native", ["lorac/scan/_native.c"], optional=True)])
