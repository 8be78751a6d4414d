"""The command line: click commands turn flags into Settings, pick a reporter, set the
exit code (0 clean, 1 findings or unreadable files, 2 usage/configuration/internal error).
No analysis logic lives here."""
from __future__ import annotations

import sys

import click

from zgcheck import __version__
from zgcheck.settings import Settings, SettingsError


def _codes(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(code for value in values for code in value.split(",") if code.strip())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zgcheck")
def main() -> None:
    """zgcheck: find missing or misordered gradient zeroing in PyTorch training loops."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--select", multiple=True, help="Rule codes to enable (comma-separated or repeated).")
@click.option("--ignore", multiple=True, help="Rule codes to disable.")
@click.option("--output-format", "-o", "output_format", type=click.Choice(["full", "concise", "json"]), default="full", show_default=True)
@click.option("--color/--no-color", default=None, help="Force colour on or off (default: only on a terminal, never with NO_COLOR).")
@click.option("--fix", is_flag=True, help="Apply safe fixes.")
@click.option("--unsafe-fixes", is_flag=True, help="Also apply (or count) fixes that need a judgement call.")
@click.option("--diff", is_flag=True, help="Print a diff of what --fix would do; write nothing.")
@click.option("--fix-only", is_flag=True, help="Apply fixes; report only what is left (no findings in the exit code).")
@click.option("--show-fixes", is_flag=True, help="List what was fixed.")
@click.option("--exit-non-zero-on-fix", is_flag=True, help="Exit 1 when a fix was applied, even if nothing is left.")
def check(paths: tuple[str, ...], select: tuple[str, ...], ignore: tuple[str, ...], output_format: str,
          color: bool | None, fix: bool, unsafe_fixes: bool, diff: bool, fix_only: bool, show_fixes: bool,
          exit_non_zero_on_fix: bool) -> None:
    """Check PATHS (files or folders, default: the current folder)."""
    from zgcheck.discovery import discover
    from zgcheck.reporting import RunReport, render
    from zgcheck.runner import FixMode, run

    try:
        settings = Settings.from_options(_codes(select), _codes(ignore))
    except SettingsError as exc:
        click.echo(f"zgcheck: error: {exc}", err=True)
        sys.exit(2)
    found = discover(paths or (".",))
    mode = FixMode(unsafe=unsafe_fixes, write=not diff) if (fix or fix_only or diff) else None
    report = RunReport(results=list(run(found.files, settings, mode)), problems=found.problems,
                       unsafe_fixes=unsafe_fixes, fix_mode=bool(mode))
    if diff:
        sys.stdout.write("".join(r.diff for r in report.results))
        for note in report.fix_notes:
            click.echo(note, err=True)
        sys.exit(1 if any(r.diff for r in report.results) else 0)
    render(report, output_format, sys.stdout, color=color, show_fixes=show_fixes)
    code = 0 if fix_only and not report.all_problems else report.return_code
    if exit_non_zero_on_fix and report.fixed:
        code = max(code, 1)
    sys.exit(code)


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
