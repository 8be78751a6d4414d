"""The rule registry: one tuple, in code order. Adding a rule means adding it here."""
from __future__ import annotations

from zgcheck.rules.base import Rule, RuleContext
from zgcheck.rules import (
    zg001_missing_zero_grad,
    zg002_zero_grad_before_step,
    zg003_zero_grad_outside_loop,
    zg004_accumulation_defeated,
    zg005_closure_missing_zero_grad,
    zg006_manual_update_missing_reset,
    zg007_gradient_leak,
    zg100_unused_noqa,
)

RULES: tuple[Rule, ...] = (
    zg001_missing_zero_grad.RULE,
    zg002_zero_grad_before_step.RULE,
    zg003_zero_grad_outside_loop.RULE,
    zg004_accumulation_defeated.RULE,
    zg005_closure_missing_zero_grad.RULE,
    zg006_manual_update_missing_reset.RULE,
    zg007_gradient_leak.RULE,
    zg100_unused_noqa.RULE,
)
RULES_BY_CODE: dict[str, Rule] = {rule.code: rule for rule in RULES}

__all__ = ["RULES", "RULES_BY_CODE", "Rule", "RuleContext"]
