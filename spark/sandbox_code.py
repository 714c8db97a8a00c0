"""Compile the workflow module once per worker, not once per workflow run.

The workflow sandbox re-imports the workflow module (``workflows.rsi``) for every run it loads,
so each run gets fresh module state and the module body runs under the sandbox's restrictions.
Python's import machinery then reads and compiles (or unmarshals) the module again each time:
about 100 KiB of code objects per cached workflow for ``workflows.rsi``, and a compile of its
source on every cache miss when no ``.pyc`` is written.

Code objects are immutable, so one can serve every run: :class:`SharedCodeFinder` sits first on
``sys.meta_path`` and, for the modules it is given, hands the import a loader that returns the
code compiled the first time (again if the file changes). The module body still executes per
import, in the sandbox, into a new module: the isolation and the checks are unchanged.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Iterable, Sequence
from types import CodeType, ModuleType

import structlog

log = structlog.get_logger("spark.sandbox_code")

_CodeKey = tuple[str, float, int]  # path, mtime, size


class SharedCodeLoader(importlib.machinery.SourceFileLoader):
    """A source loader whose compiled code is kept and reused while the file is unchanged."""

    _codes: dict[str, tuple[_CodeKey, CodeType]] = {}
    _lock = threading.Lock()

    def get_code(self, fullname: str) -> CodeType:
        """The module's code object, compiled on first use or when its file changed."""
        stats = self.path_stats(self.path)
        key = (self.path, stats["mtime"], stats.get("size", -1))
        with self._lock:
            cached = self._codes.get(fullname)
        if cached is not None and cached[0] == key:
            return cached[1]
        code = super().get_code(fullname)
        if code is None:  # pragma: no cover - a source file always has code
            raise ImportError(f"no code for {fullname!r}", name=fullname)
        with self._lock:
            self._codes[fullname] = (key, code)
        return code


class SharedCodeFinder(importlib.abc.MetaPathFinder):
    """Finds the named source modules as usual, then loads them with :class:`SharedCodeLoader`."""

    def __init__(self, module_names: Iterable[str]) -> None:
        self.module_names = frozenset(module_names)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """The path finder's spec for a named module, with the sharing loader; else ``None``."""
        if fullname not in self.module_names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or type(spec.loader) is not importlib.machinery.SourceFileLoader:
            return spec
        spec.loader = SharedCodeLoader(fullname, spec.loader.path)
        return spec


def share_module_code(*module_names: str) -> None:
    """Install (once) a :class:`SharedCodeFinder` for ``module_names`` first on ``sys.meta_path``."""
    for finder in sys.meta_path:
        if isinstance(finder, SharedCodeFinder):
            finder.module_names = finder.module_names | frozenset(module_names)
            return
    sys.meta_path.insert(0, SharedCodeFinder(module_names))
    log.debug("workflow code shared across sandboxed runs", modules=sorted(module_names))
