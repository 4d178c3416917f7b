"""SHA-256 without loading OpenSSL.

``hashlib`` imports ``_hashlib``, which loads libcrypto: about a tenth of a cached lint and a
fiftieth of a cold one, for the few kilobytes lint hashes (the result cache, the parsed backend
data). CPython's own SHA-256 module gives the same digests; :data:`sha256` is that when this
Python has it, else ``hashlib.sha256``.
"""

from __future__ import annotations

try:
    from _sha256 import sha256  # CPython up to 3.11
except ImportError:  # pragma: no cover - depends on the Python version
    try:
        from _sha2 import sha256  # CPython 3.12 and later
    except ImportError:
        from hashlib import sha256

__all__ = ["sha256"]
