"""Kubernetes resource quantities (``100m``, ``1Gi``, ``2e3``): parsing, milli rounding, equivalence.

Only what SidecarSet definitions need: validating a quantity, comparing requests with limits,
the defaulting webhook's "round up to milli precision", and an equivalence key that treats two
spellings as equal exactly when Kubernetes would serialize them identically.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from enum import StrEnum

__all__ = ["QuantityFormat", "parse_quantity", "quantity_equivalence_key", "round_up_to_milli"]

_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?P<suffix>[eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$"
)

_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_MILLI = Decimal("0.001")


class QuantityFormat(StrEnum):
    """How Kubernetes writes a quantity back out; part of its serialized identity."""

    DECIMAL_SI = "DecimalSI"
    BINARY_SI = "BinarySI"
    DECIMAL_EXPONENT = "DecimalExponent"


def parse_quantity(value: str | int | float) -> tuple[Decimal, QuantityFormat] | None:
    """Parse a quantity as Kubernetes does; ``None`` when it is not one (bools are not quantities)."""
    if isinstance(value, bool):
        return None
    text = repr(value) if isinstance(value, float) else str(value)
    match = _QUANTITY.match(text.strip()) if isinstance(value, str) else _QUANTITY.match(text)
    if match is None or (isinstance(value, str) and value != value.strip()):
        return None
    try:
        number = Decimal(match["number"])
    except InvalidOperation:
        return None
    suffix = match["suffix"] or ""
    if suffix in _BINARY_SUFFIXES:
        return number * _BINARY_SUFFIXES[suffix], QuantityFormat.BINARY_SI
    if suffix[:1] in ("e", "E"):
        return number.scaleb(int(suffix[1:])), QuantityFormat.DECIMAL_EXPONENT
    return number * _DECIMAL_SUFFIXES[suffix], QuantityFormat.DECIMAL_SI


def round_up_to_milli(amount: Decimal) -> Decimal:
    """Round up to a multiple of 0.001, as the SidecarSet defaulting webhook does for resources."""
    return amount.quantize(_MILLI, rounding=ROUND_CEILING)


def quantity_equivalence_key(value: str | int | float) -> tuple[str, str] | None:
    """A key that is equal for two quantities exactly when Kubernetes serializes them identically.

    Kubernetes keeps the value and the format; a BinarySI value below 1024 or with a fraction is
    written in DecimalSI (``resource.Quantity.CanonicalizeBytes``).
    """
    parsed = parse_quantity(value)
    if parsed is None:
        return None
    amount, quantity_format = parsed
    amount = round_up_to_milli(amount)
    if quantity_format is QuantityFormat.BINARY_SI and (
        abs(amount) < 1024 or amount != amount.to_integral_value()
    ):
        quantity_format = QuantityFormat.DECIMAL_SI
    return format(amount.normalize(), "f"), quantity_format.value
