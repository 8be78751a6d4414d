"""Jupyter notebooks: code cells in order as one module, magics masked, locations per cell.

Read with the standard library's ``json`` rather than nbformat: zgcheck needs only the
cells' sources, must write back byte-identical JSON except for the cells it fixed, and
should not pull nbformat's validation (jsonschema) into a linter's start-up. A notebook
is written back only when re-serialising the *unchanged* notebook with the detected
style (indent, key order, ASCII escaping, final newline) reproduces the file exactly.
"""
from __future__ import annotations

from zgcheck.sources import source_lines

import json
import re
from dataclasses import dataclass, replace

from zgcheck.diagnostics import Diagnostic, FileProblem, Location

BOUNDARY = "# %%zgcheck-cell-boundary%%"
MAGIC = re.compile(r"^(\s*)pass  # zgcheck-magic-(\d+)$", re.M)
PYTHON_CELL_MAGICS = ("%%time", "%%timeit", "%%capture", "%%prun")


@dataclass(frozen=True)
class Notebook:
    """A parsed notebook and the module text built from its code cells."""

    raw: dict
    text: str  # code cells joined by BOUNDARY lines, magics masked
    cells: tuple[int, ...]  # notebook cell index (0-based) of each code cell, in order
    starts: tuple[int, ...]  # module row where each code cell starts (1-based)
    originals: tuple[str, ...]  # masked lines, restored after a fix
    broken: tuple[FileProblem, ...] = ()
    # Cells indented as a whole, which IPython dedents before running: notebook cell index
    # -> (the indentation removed, the cell's source as analysed). Their findings are
    # shifted back by that indentation and get no fix.
    dedented: dict = None  # type: ignore[assignment]

    def locate(self, row: int) -> tuple[int, int]:
        """Module row -> (notebook cell number, 1-based; row inside that cell)."""
        index = 0
        for i, start in enumerate(self.starts):
            if start <= row:
                index = i
        return self.cells[index] + 1, row - self.starts[index] + 1


def cell_source(cell: object) -> str:
    """A cell's source as one string (nbformat stores a list of lines or a string)."""
    source = cell.get("source", "") if isinstance(cell, dict) else ""
    return "".join(source) if isinstance(source, list) else str(source)


def _mask(source: str, originals: list[str]) -> str:
    """Replace IPython-only lines by `pass` placeholders that keep indentation and count."""
    lines = source.split("\n")
    first = lines[0].strip() if lines else ""
    whole_cell = first.startswith("%%") and not first.startswith(PYTHON_CELL_MAGICS)
    out = []
    continued, start_indent = False, ""
    depth = 0
    for number, line in enumerate(lines):
        stripped = line.strip()
        if depth > 0 and not continued:  # inside brackets: `% (a, b)` is Python's % operator
            depth = max(0, depth + _bracket_balance(line))
            out.append(line)
            continue
        ipython = continued or stripped.startswith(("%", "!", "?")) or re.match(r"^[\w.]+\s*=\s*[!%]", stripped) or (
            _code_part(stripped).endswith("?")  # `model?` (help); not `f(x,  # why?`
        ) or _automagic(stripped)
        if whole_cell or ipython:
            indent = "" if whole_cell else (start_indent if continued else line[: len(line) - len(line.lstrip())])
            start_indent = indent
            continued = stripped.endswith("\\")  # `!cmd \` goes on to the next line
            out.append(f"{indent}pass  # zgcheck-magic-{len(originals)}")
            originals.append(line)
        else:
            continued = False
            depth = max(0, _bracket_balance(line))
            out.append(line)
    return "\n".join(out)


# IPython runs these as shell commands or magics without `%` (automagic): `ls /content/`,
# `pip install torch`. A line is masked only when it is not Python as written.
AUTOMAGICS = frozenset({
    "ls", "ll", "pip", "conda", "cd", "pwd", "cat", "cp", "mv", "rm", "mkdir", "rmdir", "less", "more", "man",
    "clear", "env", "history", "alias", "pdb", "run", "time", "timeit", "load", "who", "whos", "reset",
    "matplotlib", "pylab", "debug", "xmode", "pushd", "popd", "set_env", "store", "edit", "load_ext", "autoreload",
})


def _automagic(stripped: str) -> bool:
    """`ls /content/`, `pip install x`; never `env = dict(` (Python that goes on below)."""
    word = re.match(r"([A-Za-z_]\w*)(\s+|$)([=(\[,:]?)", stripped)
    if word is None or word.group(1) not in AUTOMAGICS or word.group(3) or _bracket_balance(stripped) > 0:
        return False
    try:
        compile(stripped, "<cell line>", "exec")
    except SyntaxError:
        return True
    except (ValueError, RecursionError, MemoryError):
        return False
    return False


def _code_part(line: str) -> str:
    """A line without its comment (a `#` outside simple string literals), stripped."""
    return line[: _scan(line)[0]].rstrip()


def _bracket_balance(line: str) -> int:
    """Open minus closed brackets on a line, outside simple string literals and comments."""
    return _scan(line)[1]


def _scan(line: str) -> tuple[int, int]:
    """Where a line's comment starts (its length if none), and the open minus closed
    brackets before it, outside simple string literals."""
    balance, quote = 0, ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#":
            return index, balance
        elif char in "([{":
            balance += 1
        elif char in ")]}":
            balance -= 1
    return len(line), balance


def read_notebook(path: str, data: bytes) -> Notebook | FileProblem:
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return FileProblem(path, "decode", f"not a valid notebook: {exc}")
    if not isinstance(raw, dict) or raw.get("nbformat") != 4 or not isinstance(raw.get("cells"), list):
        return FileProblem(path, "decode", "not a valid notebook: only nbformat 4 is supported")
    originals: list[str] = []
    chunks, cells, starts, broken = [], [], [], []
    dedented: dict[int, tuple[str, str]] = {}
    row = 1
    for index, cell in enumerate(raw["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        masked = _mask(cell_source(cell), originals)
        problem = _cell_problem(path, masked, index)
        if problem is not None:
            indent, flat = _dedented(masked)
            if indent and _cell_problem(path, flat, index) is None:
                dedented[index] = (indent, flat)
                masked, problem = flat, None
        if problem is not None:
            broken.append(problem)
            masked = "\n".join("# " + line for line in masked.split("\n"))
        cells.append(index)
        starts.append(row)
        chunks.append(masked)
        row += masked.count("\n") + 2  # the cell's lines plus the boundary line
    text = ("\n" + BOUNDARY + "\n").join(chunks) + "\n"
    return Notebook(raw, text, tuple(cells), tuple(starts), tuple(originals), tuple(broken), dedented)


def _dedented(source: str) -> tuple[str, str]:
    """IPython's leading-indent rule: a cell whose first line is indented loses that
    indentation on every line that starts with it. Returns (indent, text) or ("", source)."""
    lines = source.split("\n")
    first = next((line for line in lines if line.strip()), "")
    indent = first[: len(first) - len(first.lstrip(" \t"))]
    if not indent:
        return "", source
    return indent, "\n".join(line[len(indent):] if line.startswith(indent) else line for line in lines)


def _cell_problem(path: str, source: str, index: int) -> FileProblem | None:
    import ast

    try:
        ast.parse(source)
    except SyntaxError as exc:
        return FileProblem(path, "syntax", f"cell {index + 1}: syntax error: {exc.msg}", exc.lineno or 1, exc.offset or 1,
                           cell=index + 1)
    except (ValueError, RecursionError):
        return FileProblem(path, "syntax", f"cell {index + 1}: cannot parse", cell=index + 1)
    return None


def relocate(diag: Diagnostic, nb: Notebook) -> Diagnostic:
    """Module rows -> cell rows, in the location, the related events and the message."""
    cell, row = nb.locate(diag.location.row)
    end_cell, end_row = nb.locate(diag.end_location.row)

    def mention(match: re.Match) -> str:
        other, local = nb.locate(int(match.group(1)))
        return f"(line {local})" if other == cell else f"(cell {other}, line {local})"

    related = tuple(replace(e, line=nb.locate(e.line)[1]) for e in diag.related)
    fix = diag.fix
    shift = len(nb.dedented[cell - 1][0]) if nb.dedented and cell - 1 in nb.dedented else 0
    if shift:
        fix = None  # a cell IPython dedents: its own indentation is not rewritten
    if fix is not None:
        # Edits in the same coordinates as the location: rows inside their own cell.
        fix = replace(fix, edits=tuple(_edit_in_cell(edit, nb) for edit in fix.edits))
    return replace(
        diag,
        fix=fix,
        cell=cell,
        location=Location(row, diag.location.column + shift),
        end_location=Location(end_row if end_cell == cell else row, diag.end_location.column + shift),
        message=re.sub(r"\(line (\d+)\)", mention, diag.message),
        related=related,
    )


def _edit_in_cell(edit, nb: Notebook):
    start_cell, start = nb.locate(edit.location.row)
    end_cell, end = nb.locate(edit.end_location.row)
    if end_cell != start_cell:  # an exclusive end on the line after the cell's last one
        end = start + edit.end_location.row - edit.location.row
    return replace(edit, location=Location(start, edit.location.column), end_location=Location(end, edit.end_location.column))


def cell_sources(nb: Notebook, fixed_text: str) -> dict[int, str] | None:
    """Split a fixed module back into cells and restore the masked magics."""
    restored = MAGIC.sub(lambda m: nb.originals[int(m.group(2))], fixed_text)
    parts = restored[:-1].split("\n" + BOUNDARY + "\n") if restored.endswith("\n") else None
    if parts is None or len(parts) != len(nb.cells):
        return None
    sources = dict(zip(nb.cells, parts))
    for index, (_indent, flat) in (nb.dedented or {}).items():
        if sources.get(index) != MAGIC.sub(lambda m: nb.originals[int(m.group(2))], flat):
            return None  # never expected (such cells get no fix): keep the notebook as it is
        sources[index] = cell_source(nb.raw["cells"][index])
    return sources


def _style(raw_text: str) -> dict:
    match = re.search(r"\n( +)\"", raw_text)
    return {"indent": len(match.group(1)) if match else 1, "ensure_ascii": "\\u" in raw_text}


def _dump(raw: dict, style: dict, newline: bool) -> str:
    return json.dumps(raw, indent=style["indent"], ensure_ascii=style["ensure_ascii"]) + ("\n" if newline else "")


def rewrite(nb: Notebook, raw_text: str, sources: dict[int, str]) -> str | None:
    """The notebook JSON with only the changed cells' sources replaced, or None when the
    file's own formatting cannot be reproduced (then it must not be written)."""
    style, newline = _style(raw_text), raw_text.endswith("\n")
    if _dump(nb.raw, style, newline) != raw_text:
        return None
    updated = json.loads(json.dumps(nb.raw))
    for index, source in sources.items():
        if source != cell_source(nb.raw["cells"][index]):
            lines = source_lines(source, keepends=True)
            updated["cells"][index]["source"] = lines if isinstance(nb.raw["cells"][index]["source"], list) else source
    return _dump(updated, style, newline)
