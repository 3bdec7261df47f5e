"""The resourcesPolicy expression language (injection.md §11.3), enough to validate expressions.

Expressions such as ``max(cpu*50%, 50m)`` use ``+ - * /``, parentheses, two-argument
``max``/``min``, numbers, percentages and quantities (``m k M G T P Ki Mi Gi Ti Pi``), and one
variable (``cpu`` or ``memory``). Validation evaluates them with the variable bound to the plain
number 1, as Kruise's webhook does, so a negative result (``cpu - 2``) is rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["ExpressionError", "ExpressionParser", "ExpressionValue", "check_expression"]

_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)(?P<unit>Ki|Mi|Gi|Ti|Pi|%|[mkMGTP])?"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<symbol>[-+*/(),]))"
)
_UNITS = {
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
}
_VARIABLES = ("cpu", "memory")


class ExpressionError(ValueError):
    """The expression does not parse or does not evaluate; the message says why."""


@dataclass(frozen=True)
class ExpressionValue:
    """An evaluated (sub)expression: a number, or a quantity (units, percentages, the variable)."""

    amount: Decimal
    is_quantity: bool


class ExpressionParser:
    """Recursive-descent parser and evaluator of one expression; ``_primary`` is where the
    variable is bound (``resources_policy`` binds it to a quantity)."""

    def __init__(self, text: str, variable_value: Decimal) -> None:
        self.tokens = self._tokenize(text)
        self.position = 0
        self.variable_value = variable_value

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str, str]]:
        tokens: list[tuple[str, str, str]] = []
        position = 0
        while position < len(text):
            if text[position:].strip() == "":
                break
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise ExpressionError(f"unexpected character {text[position:].lstrip()[:1]!r}")
            if match["number"] is not None:
                tokens.append(("number", match["number"], match["unit"] or ""))
            elif match["name"] is not None:
                tokens.append(("name", match["name"], ""))
            else:
                tokens.append(("symbol", match["symbol"], ""))
            position = match.end()
        return tokens

    def _peek(self) -> tuple[str, str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take_symbol(self, symbol: str) -> bool:
        token = self._peek()
        if token is not None and token[0] == "symbol" and token[1] == symbol:
            self.position += 1
            return True
        return False

    def _expect(self, symbol: str) -> None:
        if not self._take_symbol(symbol):
            raise ExpressionError(f"expected {symbol!r}")

    def parse(self) -> ExpressionValue:
        if not self.tokens:
            raise ExpressionError("empty expression")
        value = self._sum()
        if self._peek() is not None:
            raise ExpressionError(f"unexpected {self._peek()[1]!r}")  # type: ignore[index]
        return value

    def _sum(self) -> ExpressionValue:
        value = self._product()
        while True:
            if self._take_symbol("+"):
                value = _add(value, self._product(), sign=1)
            elif self._take_symbol("-"):
                value = _add(value, self._product(), sign=-1)
            else:
                return value

    def _product(self) -> ExpressionValue:
        value = self._unary()
        while True:
            if self._take_symbol("*"):
                right = self._unary()
                if value.is_quantity and right.is_quantity:
                    raise ExpressionError("cannot multiply two quantities")
                value = ExpressionValue(value.amount * right.amount, value.is_quantity or right.is_quantity)
            elif self._take_symbol("/"):
                right = self._unary()
                if right.is_quantity:
                    raise ExpressionError("cannot divide by a quantity")
                if right.amount == 0:
                    raise ExpressionError("division by zero")
                value = ExpressionValue(value.amount / right.amount, value.is_quantity)
            else:
                return value

    def _unary(self) -> ExpressionValue:
        if self._take_symbol("-"):
            operand = self._unary()
            return ExpressionValue(-operand.amount, operand.is_quantity)
        if self._take_symbol("+"):
            return self._unary()
        return self._primary()

    def _primary(self) -> ExpressionValue:
        token = self._peek()
        if token is None:
            raise ExpressionError("unexpected end of expression")
        kind, text, unit = token
        self.position += 1
        if kind == "number":
            amount = Decimal(text)
            if unit == "%":
                return ExpressionValue(amount / 100, False)
            if unit:
                return ExpressionValue(amount * _UNITS[unit], True)
            return ExpressionValue(amount, False)
        if kind == "name":
            if self._take_symbol("("):
                if text.lower() not in ("max", "min"):
                    raise ExpressionError(f"unknown function {text!r}")
                first = self._sum()
                self._expect(",")
                second = self._sum()
                self._expect(")")
                pick = max if text.lower() == "max" else min
                chosen = pick(first.amount, second.amount)
                return ExpressionValue(chosen, first.is_quantity or second.is_quantity)
            if text.lower() in _VARIABLES:
                return ExpressionValue(self.variable_value, False)
            raise ExpressionError(f"undefined variable {text!r}")
        if text == "(":
            value = self._sum()
            self._expect(")")
            return value
        raise ExpressionError(f"unexpected {text!r}")


def _add(left: ExpressionValue, right: ExpressionValue, sign: int) -> ExpressionValue:
    return ExpressionValue(left.amount + sign * right.amount, left.is_quantity or right.is_quantity)


def check_expression(text: str) -> None:
    """Raise :class:`ExpressionError` when Kruise's webhook would reject ``text`` (variable bound to 1)."""
    value = ExpressionParser(text, Decimal(1)).parse()
    if value.amount < 0:
        raise ExpressionError("evaluates to a negative value")
