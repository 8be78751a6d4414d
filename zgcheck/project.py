"""The repository as the unit: resolving calls into other modules of the checked tree.

A trainer calls `self.strategy.optimizer_step(self.optimizer, ...)`, `loss_scaler(loss,
optimizer)` or `engine.train_one_epoch(model, loader, optimizer)`, and the code lives in
another file of the same repository. This module finds that file (absolute and relative
imports, `import pkg.mod as m`), parses it once per process, and hands back the function
or method so that the extraction can inline it at the call, as it does for same-file
helpers (ARCHITECTURE.md, "Project-wide resolution").

Only files inside the importing file's project root are considered: the nearest ancestor
holding `.git`, `pyproject.toml`, `setup.py` or `setup.cfg` (else the folder above the
outermost package). Every file read is recorded with its content hash, so that the cache
re-checks a caller when one of its helpers changes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from zgcheck.cache import content_hash

if TYPE_CHECKING:
    import libcst as cst

    from zgcheck.parsing import ParsedModule
    from zgcheck.recognize import ModuleFacts

ROOT_MARKERS = (".git", "pyproject.toml", "setup.py", "setup.cfg")
MAX_ANCESTORS = 4  # without a marker, how far up imports are looked for
MAX_MODULE_BYTES = 1024 * 1024  # helpers live in ordinary files; a huge generated one is skipped


@dataclass
class LoadedModule:
    """Another module of the project, parsed and with its facts collected."""

    path: str
    parsed: "ParsedModule"
    facts: "ModuleFacts"


@dataclass
class Project:
    """Per process: where modules are, and each module parsed at most once."""

    modules: dict[str, LoadedModule | None] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    _roots: dict[str, str] = field(default_factory=dict)
    _bases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _found: dict[tuple[str, str, int], str | None] = field(default_factory=dict)

    def root_of(self, directory: str) -> str:
        """The project root above ``directory`` (cached per folder)."""
        found = self._roots.get(directory)
        if found is None:
            found = _find_root(directory)
            self._roots[directory] = found
        return found

    def bases(self, importer: str) -> tuple[str, ...]:
        """Folders an absolute import of ``importer`` may start from, nearest first."""
        directory = os.path.dirname(os.path.abspath(importer))
        cached = self._bases.get(directory)
        if cached is not None:
            return cached
        root = self.root_of(directory)
        bases = [directory]
        top = directory
        while os.path.isfile(os.path.join(top, "__init__.py")) and top != root and os.path.dirname(top) != top:
            top = os.path.dirname(top)
            bases.append(top)
        current = directory
        for _ in range(MAX_ANCESTORS):
            if current == root or os.path.dirname(current) == current:
                break
            current = os.path.dirname(current)
            bases.append(current)
        bases += [root, os.path.join(root, "src")]
        result = tuple(dict.fromkeys(b for b in bases if b.startswith(root)))
        self._bases[directory] = result
        return result

    def find(self, importer: str, module: str, level: int = 0) -> str | None:
        """The file of ``module`` as imported from ``importer`` (``level`` dots), or None.
        Cached per folder: a big file calls `torch.` and `np.` functions hundreds of times."""
        key = (os.path.dirname(os.path.abspath(importer)), module, level)
        if key not in self._found:
            self._found[key] = self._find(importer, module, level)
        return self._found[key]

    def _find(self, importer: str, module: str, level: int) -> str | None:
        parts = [p for p in module.split(".") if p]
        if level:
            base = os.path.dirname(os.path.abspath(importer))
            for _ in range(level - 1):
                base = os.path.dirname(base)
            return _module_file(base, parts)
        for base in self.bases(importer):
            found = _module_file(base, parts)
            if found is not None:
                return found
        return None

    def load(self, path: str, factories: frozenset[str], engines: frozenset[str]) -> LoadedModule | None:
        """Parse ``path`` once (again only if it changed on disk); None when it cannot be
        read, decoded or parsed."""
        try:
            info = os.stat(path)
        except OSError:
            return None
        key = f"{path}\0{info.st_mtime_ns}\0{info.st_size}\0{sorted(factories)}\0{sorted(engines)}"
        if key in self.modules:
            return self.modules[key]
        self.modules[key] = None  # an import cycle meets None, not a recursion
        loaded = _load(path, factories, engines, self.digests)
        self.modules[key] = loaded
        return loaded


def _find_root(directory: str) -> str:
    current = directory
    while True:
        if any(os.path.exists(os.path.join(current, marker)) for marker in ROOT_MARKERS):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    # No marker: the folder above the outermost package (or the file's own folder).
    top = directory
    while os.path.isfile(os.path.join(top, "__init__.py")) and os.path.dirname(top) != top:
        top = os.path.dirname(top)
    return top


def _module_file(base: str, parts: list[str]) -> str | None:
    if not parts:
        init = os.path.join(base, "__init__.py")
        return init if os.path.isfile(init) else None
    stem = os.path.join(base, *parts)
    for candidate in (stem + ".py", os.path.join(stem, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def _load(path: str, factories: frozenset[str], engines: frozenset[str], digests: dict[str, str]) -> LoadedModule | None:
    from zgcheck.diagnostics import FileProblem
    from zgcheck.parsing import limits, parse
    from zgcheck.recognize import collect_facts
    from zgcheck.sources import decode, read_bytes

    try:
        if os.path.getsize(path) > MAX_MODULE_BYTES:
            return None
    except OSError:
        return None
    data = read_bytes(path)
    if isinstance(data, FileProblem):
        return None
    digests[path] = content_hash(data)
    source = decode(path, data)
    if isinstance(source, FileProblem) or limits(path, source.text) is not None:
        return None
    parsed = parse(path, source.text)
    if isinstance(parsed, FileProblem):
        return None
    return LoadedModule(path, parsed, collect_facts(parsed, factories, engines))


@dataclass
class Resolver:
    """Resolves one module's calls into the project; records every file it reads."""

    project: Project
    path: str
    facts: "ModuleFacts"
    used: dict[str, str] = field(default_factory=dict)  # path -> content hash, shared with nested resolvers

    def module(self, local: str) -> LoadedModule | None:
        """The project module a local name stands for (`import engine`, `from . import utils`)."""
        target = self.facts.imports.get(local)
        if target is None:
            return None
        module, level, attr = target
        path = None
        if attr is not None:
            path = self.project.find(self.path, f"{module}.{attr}" if module else attr, level)
        if path is None and attr is None:
            path = self.project.find(self.path, module, level)
        return self._load(path)

    def imported(self, local: str) -> tuple[LoadedModule, str] | None:
        """`from pkg.mod import name [as local]`: the module defining it and its own name."""
        target = self.facts.imports.get(local)
        if target is None or target[2] is None:
            return None
        module, level, attr = target
        loaded = self._load(self.project.find(self.path, module, level)) if (module or level) else None
        return (loaded, attr) if loaded is not None else None

    def function(self, local: str) -> tuple[LoadedModule, "cst.FunctionDef"] | None:
        found = self.imported(local)
        if found is None:
            return None
        loaded, name = found
        func = loaded.facts.functions.get(name)
        return (loaded, func) if func is not None else None

    def module_function(self, local: str, name: str) -> tuple[LoadedModule, "cst.FunctionDef"] | None:
        loaded = self.module(local)
        func = loaded.facts.functions.get(name) if loaded is not None else None
        return (loaded, func) if func is not None else None

    def method(self, class_ref: str, name: str, depth: int = 0) -> tuple[LoadedModule | None, str, "cst.FunctionDef"] | None:
        """Method ``name`` of the class ``class_ref`` names here (local, imported, or
        `mod.Class`), looking one level into its base classes."""
        if depth > 1:
            return None
        owner, cls = self._class(class_ref)
        facts = owner.facts if owner is not None else self.facts
        if cls not in facts.bases:
            return None
        func = facts.methods.get((cls, name))
        if func is not None:
            return owner, cls, func
        resolver = self if owner is None else self.nested(owner)
        for base in facts.bases[cls]:
            found = resolver.method(base, name, depth + 1)
            if found is not None:
                return (found[0] or owner, found[1], found[2])
        return None

    def _class(self, class_ref: str) -> tuple[LoadedModule | None, str]:
        if "." in class_ref:
            head, _, cls = class_ref.rpartition(".")
            return self.module(head), cls
        if class_ref in self.facts.bases:
            return None, class_ref
        found = self.imported(class_ref)
        return found if found is not None else (None, class_ref)

    def nested(self, loaded: LoadedModule) -> "Resolver":
        """The resolver of another module, sharing the record of files read."""
        return Resolver(self.project, loaded.path, loaded.facts, self.used)

    def _load(self, path: str | None) -> LoadedModule | None:
        if path is None or os.path.abspath(path) == os.path.abspath(self.path):
            return None
        loaded = self.project.load(path, self.facts.extra_factories, self.facts.extra_engines)
        if loaded is not None:
            self.used[path] = self.project.digests.get(path, "")
        return loaded


def merged_facts(caller: "ModuleFacts", loaded: LoadedModule) -> "ModuleFacts":
    """Facts for extracting another module's helper at a call: the caller's knowledge of
    the names it passes in (optimizers, aliases, ownership), the helper module's own
    functions, classes and imports, and what it knows of its own attributes."""
    own = loaded.facts
    return replace(
        caller,
        functions=own.functions,
        methods=own.methods,
        bases=own.bases,
        imports=own.imports,
        instances={**caller.instances, **own.instances},
        containers={**caller.containers, **own.containers},
        optimizers=caller.optimizers | own.optimizers,
        engines=caller.engines | own.engines,
        scalers=caller.scalers | own.scalers,
        not_optimizers=caller.not_optimizers | own.not_optimizers,
    )


_PROJECT: Project | None = None


def project() -> Project:
    """The process's project cache (workers of a pool each have their own)."""
    global _PROJECT
    if _PROJECT is None:
        _PROJECT = Project()
    return _PROJECT


def still_current(used: tuple[tuple[str, str], ...]) -> bool:
    """Do the files a cached result relied on still have the same bytes?"""
    from zgcheck.sources import read_bytes

    for path, digest in used:
        data = read_bytes(path)
        if isinstance(data, bytes) and content_hash(data) == digest:
            continue
        return False
    return True
