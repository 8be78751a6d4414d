"""The command line: click commands turn flags into Settings, pick a reporter, set the
exit code (0 clean, 1 findings or unreadable files, 2 usage/configuration/internal error).
No analysis logic lives here."""
from __future__ import annotations

import sys

import click

from zgcheck import __version__
from zgcheck.cache import DEFAULT_DIR as DEFAULT_CACHE_DIR
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
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="Worker processes for big runs (default: all cores).")
@click.option("--no-cache", is_flag=True, help="Check every file again; neither read nor write the cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=DEFAULT_CACHE_DIR, show_default=True,
              envvar="ZGCHECK_CACHE_DIR", help="Where results of unchanged files are kept.")
def check(paths: tuple[str, ...], select: tuple[str, ...], ignore: tuple[str, ...], output_format: str, color: bool | None,
          jobs: int | None, no_cache: bool, cache_dir: str) -> None:
    """Check PATHS (files or folders, default: the current folder)."""
    from zgcheck.discovery import discover
    from zgcheck.reporting import RunReport, render
    from zgcheck.runner import default_jobs, run

    try:
        settings = Settings.from_options(_codes(select), _codes(ignore))
    except SettingsError as exc:
        click.echo(f"zgcheck: error: {exc}", err=True)
        sys.exit(2)
    found = discover(paths or (".",))
    results = run(found.files, settings, jobs or default_jobs(), None if no_cache else cache_dir)
    report = RunReport(results=list(results), problems=found.problems)
    render(report, output_format, sys.stdout, color=color)
    sys.exit(report.return_code)


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
