"""The collector pause restores the collector's state, also when the block raises."""

from __future__ import annotations

import gc

import pytest

from simsignal.engine.core.gc_pause import gc_paused


def test_pause_and_restore() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), gc_paused():
        raise ValueError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()
