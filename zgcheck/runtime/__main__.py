"""`python -m zgcheck.runtime [options] script.py [args...]`: run a training script with the
gradient checks on, as `python -m cProfile` runs one (as `__main__`, with its own argv and
exit code), and print what was found when it ends."""
from __future__ import annotations

import argparse
import os
import runpy
import sys
import traceback

import zgcheck.runtime as runtime
from zgcheck.runtime.render import write_full, write_json


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m zgcheck.runtime",
        description="Run a PyTorch training script and report stale, wiped and leaked gradients.")
    parser.add_argument("-o", "--output-format", choices=("full", "json"), default="full")
    parser.add_argument("--output-file", metavar="FILE", help="write the report here instead of stdout")
    parser.add_argument("--fail", action="store_true", help="exit 1 when anything was found")
    parser.add_argument("--exact", action="store_true",
                        help="keep every gradient contribution to size each problem (slower)")
    parser.add_argument("-m", dest="module", action="store_true", help="run a module, as python -m does")
    parser.add_argument("script", help="the script (or, with -m, the module) to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    return parser


def _exit_code(error: SystemExit) -> int:
    if error.code is None:
        return 0
    if isinstance(error.code, int):
        return error.code
    print(error.code, file=sys.stderr)  # sys.exit("message"), as Python prints it
    return 1


def _print_error() -> None:
    """The traceback as Python would print it, without this runner's and runpy's frames."""
    kind, value, tb = sys.exc_info()
    while tb is not None and (tb.tb_frame.f_code.co_filename == __file__
                              or "runpy" in tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    traceback.print_exception(kind, value, tb)


def run(target: str, args: list[str], module: bool) -> int:
    """Run ``target`` as __main__ and return its exit code (the checks must already be on)."""
    sys.argv[:] = [target, *args]
    if module:
        sys.path.insert(0, os.getcwd())
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
    try:
        if module:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(target, run_name="__main__")
    except SystemExit as error:
        return _exit_code(error)
    except KeyboardInterrupt:
        _print_error()
        return 130
    except BaseException:  # the script's own failure: report it, then still print the findings
        _print_error()
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    if not options.module and not os.path.exists(options.script):
        print(f"python -m zgcheck.runtime: can't open file {options.script!r}", file=sys.stderr)
        return 2
    try:
        runtime.enable(exact=options.exact)
    except RuntimeError as error:  # no torch
        print(f"python -m zgcheck.runtime: {error}", file=sys.stderr)
        return 2
    try:
        code = run(options.script, options.args, options.module)
    finally:
        runtime.disable()
    findings = runtime.report()
    stream = open(options.output_file, "w", encoding="utf-8") if options.output_file else sys.stdout
    try:
        if options.output_format == "json":
            write_json(findings, stream)
        else:
            write_full(findings, stream, runtime.stats())
    finally:
        if stream is not sys.stdout:
            stream.close()
        else:
            stream.flush()
    if options.fail and findings and code == 0:
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
