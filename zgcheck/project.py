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
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from zgcheck.cache import content_hash

if TYPE_CHECKING:
    import libcst as cst

    from zgcheck.parsing import ParsedModule
    from zgcheck.recognize import ModuleFacts

# Absolute imports of these packages are libraries, not helpers of the checked project,
# even when the checked tree is the library itself: checking torch made all of torch "the
# project" and parsed its biggest modules to follow `torch.manual_seed(...)`. Training
# frameworks (trl, accelerate, ...) are not listed: their own repositories train through
# their own helpers.
LIBRARIES = frozenset({
    "torch", "torchvision", "torchaudio", "torchtext", "numpy", "scipy", "pandas", "sklearn", "jax", "flax",
    "tensorflow", "keras", "triton", "sympy", "matplotlib",
})
ROOT_MARKERS = (".git", "pyproject.toml", "setup.py", "setup.cfg")
MAX_ANCESTORS = 4  # without a marker, how far up imports are looked for
MAX_MODULE_BYTES = 512 * 1024  # helpers live in ordinary files; a huge generated one is skipped
MAX_DEPTH = 2  # a helper's helper in a third module is followed; further is not
MAX_REEXPORTS = 3  # `from .gemini import X` in __init__.py files, followed this many times
# Import statements at any indentation, a parenthesised name list included; each starts a
# line of its own when joined (they are parsed alone).
_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_IMPORT_STATEMENT = re.compile(rb"^[ \t]*(?:from[ \t]+[\w.]+[ \t]+import[ \t]*(?:\([^)]*\)|[^\n;#]*)|import[ \t]+[^\n;#]*)", re.M)


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
    indexes: dict[str, "ModuleIndex | None"] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    _roots: dict[str, str] = field(default_factory=dict)
    _bases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _found: dict[tuple[str, str, int], str | None] = field(default_factory=dict)
    _files: dict[str, list[str]] = field(default_factory=dict)
    _callers: dict[tuple[str, str, str | None], tuple[str, str] | None] = field(default_factory=dict)
    _import_words: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    _listings: dict[str, str] = field(default_factory=dict)
    _index_digests: dict[str, str] = field(default_factory=dict)

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
        if not level and module.split(".")[0] in LIBRARIES:
            return None  # `torch.manual_seed(...)`: never a training helper of the user's
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

    def analysed_caller(self, path: str, name: str, imported: str | None = None) -> tuple[str, str] | None:
        """A module of the project that imports function ``name`` from ``path``, names it
        in its code, and is itself analysed (zgcheck's gates let it through, with the
        helpers it calls): the function runs where that module calls it. Returns (caller
        path, content hash), or None. Once per process and function."""
        key = (os.path.abspath(path), name, imported)
        if key not in self._callers:
            self._callers[key] = self._analysed_caller(key[0], name, imported or name)
        return self._callers[key]

    def _analysed_caller(self, path: str, name: str, imported: str) -> tuple[str, str] | None:
        from zgcheck.parsing import precheck
        from zgcheck.sources import decode, might_hold_training_code, read_bytes

        word = re.compile(rb"\b" + re.escape(name.encode()) + rb"\b")
        # An import of it names its module (`from .optim import f`, `from . import optim`).
        stem = os.path.splitext(os.path.basename(path))[0]
        module = stem if stem != "__init__" else os.path.basename(os.path.dirname(path))
        module_word = re.compile(rb"\b" + re.escape(module.encode()) + rb"\b")
        for other in self._importers(self.root_of(os.path.dirname(path))).get(module, ()):
            if other == path:
                continue
            data = read_bytes(other)
            if not isinstance(data, bytes) or len(data) > MAX_MODULE_BYTES or not word.search(data):
                continue
            imports = b"\n".join(m.group(0).strip() for m in _IMPORT_STATEMENT.finditer(data) if module_word.search(m.group(0)))
            if not imports or not self._imports(other, imports.decode("utf-8", "replace"), imported, path):
                continue
            # The caller's own gates, as a check of it runs them: the byte prefilter, then
            # precheck (the lexical scan and the parse, its helpers counted).
            if not might_hold_training_code(data):
                continue
            source = decode(other, data)
            if hasattr(source, "text") and precheck(other, source.text).has_events:
                return other, content_hash(data)
        return None

    def _imports(self, importer: str, text: str, name: str, path: str) -> bool:
        """Do the import statements ``text`` of ``importer`` bind ``name`` from the module
        at ``path`` (`from .m import name`), or that module itself (`from . import m`,
        `import pkg.m as m`)?"""
        import ast
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(text, importer)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return False
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                for alias in node.names:
                    if alias.name == name and self.find(importer, module, node.level) == path:
                        return True
                    joined = f"{module}.{alias.name}" if module else alias.name
                    if self.find(importer, joined, node.level) == path:
                        return True
            elif isinstance(node, ast.Import):
                if any(self.find(importer, alias.name, 0) == path for alias in node.names):
                    return True
        return False

    def _importers(self, root: str) -> dict[str, list[str]]:
        """Each word of the project's import statements -> the files whose imports name it
        (each file read once per process; later lookups only read their candidates)."""
        found = self._import_words.get(root)
        if found is None:
            from zgcheck.sources import read_bytes

            found = self._import_words[root] = {}
            for other in self._project_files(root):
                data = read_bytes(other)
                if not isinstance(data, bytes) or len(data) > MAX_MODULE_BYTES:
                    continue
                words = {w for m in _IMPORT_STATEMENT.finditer(data) for w in _WORD.findall(m.group(0))}
                for w in words:
                    found.setdefault(w.decode("ascii"), []).append(other)
        return found

    def _project_files(self, root: str) -> list[str]:
        """Python files under the project root (as a directory walk finds them)."""
        found = self._files.get(root)
        if found is None:
            from zgcheck.discovery import SKIP_DIRS, is_venv

            found = []
            # Plain walk (no .gitignore: a caller is a caller), pruned as discovery prunes.
            for folder, dirs, names in os.walk(os.path.abspath(root)):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS
                                 and not is_venv(os.path.join(folder, d)))
                found.extend(os.path.join(folder, n) for n in sorted(names) if n.endswith(".py"))
            self._files[root] = found
        return found

    def listing_digest(self, root: str) -> str:
        """A hash of the project's Python files with their sizes and modification times:
        it changes when a file is added, removed or edited. Once per process."""
        found = self._listings.get(root)
        if found is None:
            import hashlib

            digest = hashlib.blake2b(digest_size=12)
            for path in self._project_files(root):
                try:
                    info = os.stat(path)
                except OSError:
                    continue
                digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
            found = self._listings[root] = digest.hexdigest()
        return found

    def index(self, path: str) -> ModuleIndex | None:
        """The module's `ast` index, once per process (again only if it changed on disk)."""
        try:
            info = os.stat(path)
        except OSError:
            return None
        key = f"{path}\0{info.st_mtime_ns}\0{info.st_size}"
        if key not in self.indexes:
            self.indexes[key] = _index(path, self._index_digests)
        return self.indexes[key]

    def index_digest(self, path: str) -> str:
        """Content hash of the bytes :meth:`index` last read at ``path``."""
        return self._index_digests.get(path, "")

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


@dataclass(frozen=True)
class ModuleIndex:
    """What CPython's `ast` tells of a module, without LibCST: which functions and methods
    hold a gradient event (only those are worth a LibCST parse), class bases, imports."""

    functions: dict[str, bool]
    methods: dict[tuple[str, str], bool]
    bases: dict[str, tuple[str, ...]]
    imports: dict[str, tuple[str, int, str | None]]


# A helper is inlined only if its own text shows an event (or a reset by name).
DIRECT_EVENT = re.compile(r"backward\(|\.step\(|zero_grad|clear_grad|\.grad\b|optimizer_step|(zero|reset|clear)\w*grad", re.I)


def _index(path: str, digests: dict[str, str]) -> ModuleIndex | None:
    """The module's `ast` index; ``digests`` receives the hash of the bytes read."""
    import ast
    import warnings

    from zgcheck.diagnostics import FileProblem
    from zgcheck.sources import decode, read_bytes

    data = read_bytes(path)
    digests[path] = content_hash(data) if isinstance(data, bytes) else ""
    if isinstance(data, FileProblem) or len(data) > MAX_MODULE_BYTES:
        return None
    source = decode(path, data)
    if isinstance(source, FileProblem):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source.text, path)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    lines = source.text.splitlines()

    def holds_event(node: ast.AST) -> bool:
        text = "\n".join(lines[node.lineno - 1 : node.end_lineno])
        return bool(DIRECT_EVENT.search(text))

    functions: dict[str, bool] = {}
    methods: dict[tuple[str, str], bool] = {}
    bases: dict[str, tuple[str, ...]] = {}
    imports: dict[str, tuple[str, int, str | None]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions.setdefault(node.name, holds_event(node))
        elif isinstance(node, ast.ClassDef):
            bases[node.name] = tuple(ast.unparse(b) for b in node.bases if isinstance(b, (ast.Name, ast.Attribute)))
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    methods.setdefault((node.name, item.name), holds_event(item))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    imports[alias.asname] = (alias.name, 0, None)
                else:
                    top = alias.name.split(".")[0]
                    imports.setdefault(top, (top, 0, None))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    imports[alias.asname or alias.name] = (node.module or "", node.level, alias.name)
    return ModuleIndex(functions, methods, bases, imports)


@dataclass
class Resolver:
    """Resolves one module's calls into the project; records every file it reads.

    Other modules are first read with CPython's `ast` (an index of which functions hold
    events); LibCST parses a module only when a call really reaches such a function."""

    project: Project
    path: str
    facts: "ModuleFacts"
    used: dict[str, str] = field(default_factory=dict)  # path -> content hash, shared with nested resolvers
    depth: int = 0  # how many modules away from the checked file

    def function(self, local: str) -> tuple[LoadedModule, "cst.FunctionDef"] | None:
        """An imported function (`from .train_utils import clear_grads`) that holds events."""
        target = self.facts.imports.get(local)
        if target is None or target[2] is None or not (target[0] or target[1]):
            return None
        module, level, name = target
        return self._function(self.project.find(self.path, module, level), name)

    def module_function(self, local: str, name: str) -> tuple[LoadedModule, "cst.FunctionDef"] | None:
        """`engine.train_one_epoch(...)` with `import engine` / `from pkg import engine`."""
        return self._function(self._module_path(self.path, self.facts.imports, local), name)

    def method(self, class_ref: str, name: str) -> tuple[LoadedModule | None, str, "cst.FunctionDef"] | None:
        """Method ``name`` of the class ``class_ref`` names here (local, imported, or
        `mod.Class`), looking one level into its base classes."""
        path, cls = self._class(self.path, self.facts.imports, class_ref)
        return self._method(path, cls, name, 0)

    # ----- internals ---------------------------------------------------------------
    def _function(self, path: str | None, name: str, hops: int = 0) -> tuple[LoadedModule, "cst.FunctionDef"] | None:
        index = self._index(path)
        if index is not None and name not in index.functions and name in index.imports and hops < MAX_REEXPORTS:
            target = index.imports[name]  # re-exported by a package's __init__.py
            if target[2] is not None:
                return self._function(self.project.find(path, target[0], target[1]), target[2], hops + 1)
        if index is None or not index.functions.get(name):
            return None
        loaded = self._load(path)
        func = loaded.facts.functions.get(name) if loaded is not None else None
        return (loaded, func) if func is not None else None

    def _method(self, path: str | None, cls: str, name: str, depth: int, hops: int = 0):
        if path is None:  # a class of the checked module itself
            if cls not in self.facts.bases:
                return None
            func = self.facts.methods.get((cls, name))
            if func is not None:
                return None, cls, func
            importer, imports, bases = self.path, self.facts.imports, self.facts.bases[cls]
        else:
            index = self._index(path)
            if index is not None and cls not in index.bases and cls in index.imports and hops < MAX_REEXPORTS:
                # `from .wrapped import ZeroingOptimizer` in a package's __init__.py: follow it.
                target = index.imports[cls]
                if target[2] is not None:
                    return self._method(self.project.find(path, target[0], target[1]), target[2], name, depth, hops + 1)
            if index is None or cls not in index.bases:
                return None
            marked = index.methods.get((cls, name))
            if marked is not None:
                loaded = self._load(path) if marked else None
                func = loaded.facts.methods.get((cls, name)) if loaded is not None else None
                return (loaded, cls, func) if func is not None else None
            importer, imports, bases = path, index.imports, index.bases[cls]
        if depth >= 1:
            return None
        for base in bases:
            base_path, base_cls = self._class(importer, imports, base)
            if base_path is None and importer != self.path:
                base_path = importer  # a base class of the same other module
            found = self._method(base_path, base_cls, name, depth + 1)
            if found is not None:
                return found
        return None

    def _class(self, importer: str, imports: dict, class_ref: str) -> tuple[str | None, str]:
        """Where a class named ``class_ref`` in ``importer`` is defined (None: ``importer``)."""
        if "." in class_ref:
            head, _, cls = class_ref.rpartition(".")
            return self._module_path(importer, imports, head), cls
        target = imports.get(class_ref)
        if target is None or target[2] is None:
            return None, class_ref
        return self.project.find(importer, target[0], target[1]), target[2]

    def _module_path(self, importer: str, imports: dict, local: str) -> str | None:
        target = imports.get(local)
        if target is None:
            return None
        module, level, attr = target
        if attr is not None:
            return self.project.find(importer, f"{module}.{attr}" if module else attr, level)
        return self.project.find(importer, module, level)

    def _index(self, path: str | None) -> ModuleIndex | None:
        if path is None or self.depth >= MAX_DEPTH or os.path.abspath(path) == os.path.abspath(self.path):
            return None
        found = self.project.index(path)
        # What the index says (a method without events) decides the result too.
        self.used.setdefault(path, self.project.index_digest(path))
        return found

    def runs_elsewhere(self, name: str, cls: str | None = None) -> bool:
        """Is this module's function ``name`` (a method of class ``cls``) called by another
        module that is analysed (its loop is checked with the function inlined)? The caller
        is recorded; when there is none, the project's listing is (a caller written later
        must count)."""
        found = self.project.analysed_caller(self.path, name, cls)
        if found is not None:
            self.used[found[0]] = found[1]
        else:
            root = self.project.root_of(os.path.dirname(os.path.abspath(self.path)))
            self.used[LISTING + root] = self.project.listing_digest(root)
        return found is not None

    def nested(self, loaded: LoadedModule) -> "Resolver":
        """The resolver of another module, sharing the record of files read."""
        return Resolver(self.project, loaded.path, loaded.facts, self.used, self.depth + 1)

    def _load(self, path: str) -> LoadedModule | None:
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
# A dependency on the whole project's listing (a result that found no caller of a helper),
# recorded next to the files a result read: this prefix, then the project root.
LISTING = "\0listing:"


def project() -> Project:
    """The process's project cache (workers of a pool each have their own)."""
    global _PROJECT
    if _PROJECT is None:
        _PROJECT = Project()
    return _PROJECT


def reset_project() -> None:
    """Forget what this process learnt of its projects (a new run looks at them afresh)."""
    global _PROJECT
    _PROJECT = None
