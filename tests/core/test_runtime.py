"""`core.runtime.heap_freeze`: what a long-running process does after start-up."""

from __future__ import annotations

import gc
import weakref

from core.runtime import heap_freeze


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_the_start_up_heap_is_frozen_and_its_garbage_collected_first():
    kept, dropped = Node(), Node()
    dropped_ref = weakref.ref(dropped)
    del dropped
    try:
        heap_freeze()
        assert dropped_ref() is None  # collected, not frozen for good
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects(generation=2))  # frozen: not scanned
    finally:
        gc.unfreeze()
    assert any(o is kept for o in gc.get_objects(generation=2))
