"""Deterministic kill injection into checkpoint saves.

``SaveKiller`` wraps the durable steps of a save: TensorFlow's ``SaveV2`` (the data and index
files; a kill just before or just after it), the ``os.replace`` that installs the
``checkpoint`` state file, and each ``os.remove`` of a retired checkpoint's files. When
``kill_at(op)`` says so, it raises ``Killed`` (a BaseException, so no ``except Exception``
clean-up runs) at that point, as a SIGKILL there would stop the process. It also records
which step each completed state-file replace committed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import tensorflow as tf


class Killed(BaseException):
    """The simulated SIGKILL."""


@dataclass
class Op:
    index: int  # 1-based position among the save operations seen so far
    kind: str  # "save_before", "save_after", "replace", "remove"
    path: str


class SaveKiller:
    def __init__(self, monkeypatch, kill_at):
        self._monkeypatch = monkeypatch
        self._kill_at = kill_at
        self.ops: list[Op] = []
        self.committed: list[int] = []  # steps named by completed state-file replaces
        real_save, real_replace, real_remove = tf.raw_ops.SaveV2, os.replace, os.remove

        def save(**kwargs):
            self._op("save_before", kwargs["prefix"])
            result = real_save(**kwargs)
            self._op("save_after", kwargs["prefix"])
            return result

        def replace(src, dst, *args, **kwargs):
            if os.path.basename(dst) != "checkpoint":
                return real_replace(src, dst, *args, **kwargs)
            self._op("replace", dst)
            real_replace(src, dst, *args, **kwargs)
            text = open(dst).read()
            self.committed.append(int(re.search(r'model_checkpoint_path: ".*-(\d+)"', text).group(1)))

        def remove(path, *args, **kwargs):
            if "model.ckpt-" in os.path.basename(path):
                self._op("remove", path)
            return real_remove(path, *args, **kwargs)

        monkeypatch.setattr(tf.raw_ops, "SaveV2", save)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "remove", remove)

    def _op(self, kind, path):
        op = Op(len(self.ops) + 1, kind, str(path))
        self.ops.append(op)
        if self._kill_at(op):
            raise Killed(f"killed at {kind} of {path} (operation {op.index})")

    def undo(self):
        self._monkeypatch.undo()
