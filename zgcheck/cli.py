"""The command line: click commands turn flags into Settings, pick a reporter, set the
exit code (0 clean, 1 findings or unreadable files, 2 usage/configuration/internal error).
No analysis logic lives here."""
from __future__ import annotations

import os
import sys

import click

from zgcheck import __version__
from zgcheck.cache import DEFAULT_DIR as DEFAULT_CACHE_DIR
from zgcheck.reporting import FORMATS
from zgcheck.settings import SettingsError


def _codes(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(code for value in values for code in value.split(",") if code.strip())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zgcheck")
def main() -> None:
    """zgcheck: find missing or misordered gradient zeroing in PyTorch training loops."""
    for stream in (sys.stdout, sys.stderr):
        try:  # a path or message the terminal cannot encode must not crash the report
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass


PROGRESS_MIN_FILES = 200  # below this a run is over before a bar would be worth drawing


def _fail(message: str) -> None:
    click.echo(f"zgcheck: error: {message}", err=True)
    sys.exit(2)


def _resolver(opts: dict):
    """Command-line options on top of the configuration files (or --config / --isolated)."""
    from zgcheck.config import Resolver, clear_caches, cli_options

    clear_caches()  # each run reads the files as they are now (tests run many in one process)
    layer = cli_options(
        select=_codes(opts["select"]) or None, extend_select=_codes(opts["extend_select"]), ignore=_codes(opts["ignore"]),
        exclude=_codes(opts["exclude"]) or None, extend_exclude=_codes(opts["extend_exclude"]),
        force_exclude=opts["force_exclude"], respect_gitignore=opts["respect_gitignore"],
    )
    return Resolver(cli=layer, config=opts["config"], isolated=opts["isolated"])


def _progress(files: list[str], results):
    """Wrap ``results`` in a rich progress bar on stderr for big runs on a terminal."""
    if len(files) < PROGRESS_MIN_FILES or not sys.stderr.isatty():
        yield from results
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("Checking", total=len(files))
        for result in results:
            bar.advance(task)
            yield result


def _fix_mode(opts: dict):
    from zgcheck.runner import FixMode

    wanted = opts["fix"] or opts["fix_only"] or opts["diff"]
    return FixMode(unsafe=opts["unsafe_fixes"], write=not opts["diff"]) if wanted else None


def _stdin(name: str, settings, mode):
    """Check standard input; with --fix the fixed code goes to stdout, the report to stderr."""
    from zgcheck.reporting import RunReport
    from zgcheck.runner import check_source, fix_source

    text = sys.stdin.read()
    if mode is not None and mode.write:
        outcome = fix_source(text, name, settings, mode.unsafe)
        fixed = outcome.text if outcome.fixed and not outcome.refused else text
        sys.stdout.write(fixed)
        return RunReport(results=[check_source(fixed, name, settings)]), True
    return RunReport(results=[check_source(text, name, settings)]), False


def _collect(paths: tuple[str, ...], opts: dict, resolver):
    """Check stdin (path ``-``) or the discovered files; returns (RunReport, report to stderr?)."""
    from zgcheck.discovery import discover
    from zgcheck.reporting import RunReport
    from zgcheck.runner import run

    stdin_filename, mode = opts["stdin_filename"], _fix_mode(opts)
    if paths == ("-",) or (stdin_filename and not paths):
        settings = resolver.for_path(stdin_filename if stdin_filename else "stdin")
        return _stdin(stdin_filename or "-", settings, mode)
    if "-" in paths:
        raise SettingsError("`-` (standard input) cannot be mixed with other paths")
    respect = resolver.for_path(os.path.join(paths[0] if paths else ".", "x")).respect_gitignore
    found = discover(paths or (".",), respect_gitignore=respect, excluded=resolver.excludes)
    from zgcheck.runner import default_jobs

    cache_dir = None if opts["no_cache"] else opts["cache_dir"]
    results = list(_progress(found.files, run(found.files, resolver, mode, opts["jobs"] or default_jobs(), cache_dir)))
    report = RunReport(results=results, problems=found.problems, unsafe_fixes=opts["unsafe_fixes"], fix_mode=bool(mode))
    return report, False


def _apply_baseline(report, opts: dict):
    from zgcheck.baseline import new_findings, read_baseline, write_baseline

    if opts["write_baseline"]:
        count = write_baseline(report.results, opts["write_baseline"])
        click.echo(f"Wrote {count} finding{'s' if count != 1 else ''} to {opts['write_baseline']}.", err=True)
        sys.exit(0)
    if opts["baseline"]:
        report.results = new_findings(report.results, read_baseline(opts["baseline"]))


def _write(report, opts: dict, stream) -> None:
    from zgcheck.reporting import render
    from zgcheck.reporting.statistics import write_statistics

    if opts["statistics"]:
        write_statistics(report, stream, as_json=opts["output_format"] == "json")
    else:
        render(report, opts["output_format"], stream, color=opts["color"], quiet=opts["quiet"], show_fixes=opts["show_fixes"])


def _exit_code(report, opts: dict) -> int:
    if opts["diff"]:
        return 1 if any(r.diff for r in report.results) else 0
    if opts["exit_zero"]:
        return 0
    code = 0 if opts["fix_only"] and not report.all_problems else report.return_code
    return max(code, 1) if opts["exit_non_zero_on_fix"] and report.fixed else code


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--select", multiple=True, help="Rule codes to enable, replacing the configuration's (comma-separated or repeated).")
@click.option("--extend-select", multiple=True, help="Rule codes to enable on top of the selection.")
@click.option("--ignore", multiple=True, help="Rule codes to disable.")
@click.option("--exclude", multiple=True, help="Glob patterns of files and folders to skip, replacing the configuration's.")
@click.option("--extend-exclude", multiple=True, help="More glob patterns to skip.")
@click.option("--force-exclude/--no-force-exclude", default=None, help="Apply exclude patterns to files named explicitly too.")
@click.option("--respect-gitignore/--no-respect-gitignore", default=None, help="Skip what .gitignore excludes (default: yes).")
@click.option("--config", "config", type=click.Path(dir_okay=False), help="Use this pyproject.toml for every file.")
@click.option("--isolated", is_flag=True, help="Ignore all configuration files.")
@click.option("--output-format", "--format", "-o", "output_format", type=click.Choice(FORMATS), default="full", show_default=True)
@click.option("--output-file", type=click.Path(dir_okay=False), help="Write the report to this file instead of standard output.")
@click.option("--statistics", is_flag=True, help="Show counts per rule instead of the findings.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option("--quiet", "-q", is_flag=True, help="Print findings only, no summary.")
@click.option("--stdin-filename", help="Name of the file read from standard input (path `-`).")
@click.option("--baseline", type=click.Path(dir_okay=False), help="Report only findings not recorded in this baseline file.")
@click.option("--write-baseline", type=click.Path(dir_okay=False), help="Record the current findings in this file and exit 0.")
@click.option("--color/--no-color", default=None, help="Force colour on or off (default: only on a terminal, never with NO_COLOR).")
@click.option("--fix", is_flag=True, help="Apply safe fixes (with `-`: print the fixed code).")
@click.option("--unsafe-fixes", is_flag=True, help="Also apply (or count) fixes that need a judgement call.")
@click.option("--diff", is_flag=True, help="Print a diff of what --fix would do; write nothing.")
@click.option("--fix-only", is_flag=True, help="Apply fixes; report only what is left (no findings in the exit code).")
@click.option("--show-fixes", is_flag=True, help="List what was fixed.")
@click.option("--exit-non-zero-on-fix", is_flag=True, help="Exit 1 when a fix was applied, even if nothing is left.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Worker processes for big runs (default: all cores).")
@click.option("--no-cache", is_flag=True, help="Check every file again; neither read nor write the cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=DEFAULT_CACHE_DIR, show_default=True,
              envvar="ZGCHECK_CACHE_DIR", help="Where results of unchanged files are kept.")
def check(paths: tuple[str, ...], **opts) -> None:
    """Check PATHS (files or folders, default: the current folder; `-` reads standard input)."""
    try:
        report, to_stderr = _collect(paths, opts, _resolver(opts))
        _apply_baseline(report, opts)
    except SettingsError as exc:
        _fail(str(exc))
    if opts["diff"]:
        sys.stdout.write("".join(r.diff for r in report.results))
        for note in report.fix_notes:
            click.echo(note, err=True)
    elif opts["output_file"]:
        with open(opts["output_file"], "w", encoding="utf-8") as stream:
            _write(report, opts, stream)
    else:
        _write(report, opts, sys.stderr if to_stderr else sys.stdout)
    sys.exit(_exit_code(report, opts))


@main.command()
@click.argument("code", required=False)
@click.option("--all", "show_all", is_flag=True, help="List every rule.")
def rule(code: str | None, show_all: bool) -> None:
    """Explain a rule (e.g. `zgcheck rule ZG002`), or list them with --all."""
    from zgcheck.rules import RULES, RULES_BY_CODE

    if show_all or not code:
        for item in RULES:
            click.echo(f"{item.code}  {item.name:<28} {item.summary}")
        return
    found = RULES_BY_CODE.get(code.upper()) or next((r for r in RULES if r.name == code.lower()), None)
    if found is None:
        click.echo(f"zgcheck: error: unknown rule {code!r}; try `zgcheck rule --all`", err=True)
        sys.exit(2)
    click.echo(f"{found.code} {found.name}\n\n{found.summary}.\n\n{found.explanation}")


if __name__ == "__main__":  # pragma: no cover
    main()
