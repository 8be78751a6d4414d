"""ZG100 unused-noqa: a ``# noqa: ZG…`` directive that silences nothing.

The finding is produced by ``suppression.py`` (it needs the other rules' results); this
module holds the rule's record so that docs, selection and SARIF treat it like any rule.
"""
from __future__ import annotations

from typing import Iterator

from zgcheck.diagnostics import Diagnostic
from zgcheck.rules.base import Rule, RuleContext

EXPLANATION = """\
What it does
  Finds `# noqa: ZG...` directives whose codes silence nothing on their line, and codes
  that name no zgcheck rule (a typo such as `ZG02`, or a rule that was renamed).

Why it hurts training
  A stale directive hides the next real bug on that line: once the loop is edited, a
  wrong zero_grad() placement there would go unreported.

Bad
  optimizer.zero_grad()
  loss.backward()
  optimizer.step()  # noqa: ZG002      <- nothing to silence here

Good
  optimizer.zero_grad()
  loss.backward()
  optimizer.step()

  Codes of other linters (`# noqa: E501`) and bare `# noqa` are left alone; a code of a
  rule that is not selected is not reported either.

How the fix works
  The unused codes are removed from the directive; when none remain, the whole directive
  (and the spaces before it) is removed. The fix is always safe: it only edits a comment.
"""


def check(ctx: RuleContext) -> Iterator[Diagnostic]:
    """Nothing to do on the loops themselves; see ``zgcheck.suppression``."""
    return iter(())


RULE = Rule(
    code="ZG100",
    name="unused-noqa",
    summary="a `# noqa: ZG...` directive that silences nothing, or names an unknown code",
    explanation=EXPLANATION,
    check=check,
    fix_safety="safe",
)
