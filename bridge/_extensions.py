"""What extensions register at one of the runtime's seams (model_fn scopes, checkpoint name mapping).

Extensions shipped with bridge (``bridge.compat``, ``bridge.checkpoints``) register on import;
a registry imports them the first time its items are used, so the runtime never imports them
at module level (arrows point down: the runtime knows nothing of them).
"""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered set of registered items, with bridge's built-in extensions loaded before first use."""

    def __init__(self, built_in: tuple[str, ...]) -> None:
        self._built_in = built_in
        self._items: list[T] = []
        self._loaded = False

    def register(self, item: T) -> None:
        """Adds ``item`` once; later registrations of the same item are ignored."""
        if item not in self._items:
            self._items.append(item)

    def items(self) -> list[T]:
        """The registered items in registration order (a copy), built-in extensions imported first."""
        if not self._loaded:
            self._loaded = True
            for name in self._built_in:
                importlib.import_module(name)
        return list(self._items)
