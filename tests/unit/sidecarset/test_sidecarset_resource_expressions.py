"""resourcesPolicy expressions as the validating webhook checks them (scenario 58 of §14.3)."""

from __future__ import annotations

import re

import pytest

from sidecarhub.sidecarset.resource_expressions import ExpressionError, check_expression


@pytest.mark.parametrize(
    "expression",
    [
        "cpu*50%",
        "max(cpu*50%, 50m)",
        "min(cpu*50%, 100m)",
        "0.5*cpu - 0.3*max(0, cpu-4) + 0.3*max(0, cpu-8)",
        "  cpu * 50%  ",
        "memory*50%",
        "max(min(memory*20%, 1Gi), max(100Mi, memory/4))",
        "MAX(cpu, 1)",
        "1e3*cpu",
    ],
)
def test_valid_expressions(expression: str) -> None:
    check_expression(expression)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("invalidvar * 50%", "undefined variable"),
        ("cpu +*/ 50%", "unexpected"),
        ("max(cpu*50%, 50m", "expected ')'"),
        ("(cpu*50%))", "unexpected"),
        ("max(cpu)", "expected ','"),
        ("avg(cpu, 1)", "unknown function"),
        ("cpu - 2", "negative"),
        ("100m * 1Gi", "two quantities"),
        ("cpu / 0", "division by zero"),
        ("cpu / 1m", "divide by a quantity"),
        ("cpu # 2", "unexpected character"),
        ("", "empty"),
    ],
)
def test_invalid_expressions(expression: str, reason: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(reason)):
        check_expression(expression)
