"""The normalizer's public import path, kept stable for users and outside checks.

``relay.normalize.normalize(field, value, country=None)`` is a documented contract (docs/ARCHITECTURE.md);
the implementation lives in the pure core, ``relay.core.normalize``.
"""

from relay.core.normalize import normalize

__all__ = ["normalize"]
