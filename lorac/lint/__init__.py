"""The lint stage: the driver, the plugin manager and hook specifications, fixes, the result
cache, and ``rules/`` (the Rule contract, one module per rule family).

Kept free of imports: the cached fast path of ``lorac lint`` imports :mod:`lorac.lint.cache`."""
