"""The public face: labkit/__init__.py exports exactly its sorted __all__."""

from __future__ import annotations

import labkit


def test_public_names_are_sorted_and_exported():
    assert labkit.__all__ == sorted(labkit.__all__)
    for name in labkit.__all__:
        assert hasattr(labkit, name), name
    public = {n for n in dir(labkit) if not n.startswith("_")}
    # modules imported as a side effect are the only other public names
    stray = {n for n in public - set(labkit.__all__) if not isinstance(getattr(labkit, n), type(labkit))}
    assert not stray, f"exported but not in __all__: {stray}"
