"""resourcesPolicy at injection: a sidecar's resources computed from the pod's (injection.md §11).

Targets are the pod's native-sidecar init containers and its containers, minus the containers of
the SidecarSets injected into this pod, filtered by ``targetContainersNameRegex`` (an unanchored
search). Their limits and requests are aggregated (``sum`` or ``max``); a limit aggregate exists
only when every target sets that limit, so a limit expression is dropped when one target is
unlimited — even a constant one, as in Kruise. Expressions are evaluated with the language of
``resource_expressions`` (the same parser), the variable bound to the aggregate as a quantity;
results are truncated to milli-units and written in Kubernetes' canonical quantity form.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Any

from sidecarhub.sidecarset.matching import InjectionError
from sidecarhub.sidecarset.quantity import QuantityFormat, parse_quantity

# The parser of the expression language lives in resource_expressions; evaluation only changes how
# the variable is bound (a quantity, not validation's plain 1), so it reuses the parser as is.
from sidecarhub.sidecarset.resource_expressions import ExpressionError, ExpressionParser, ExpressionValue

__all__ = ["format_quantity", "resources_from_policy"]

_RESOURCES = ("cpu", "memory")
_MILLI = Decimal("0.001")
_MEMORY_WORD = re.compile(r"\bmemory\b")
_BINARY_LITERAL = re.compile(r"[0-9.](?:Ki|Mi|Gi|Ti|Pi)\b")
_DECIMAL_SUFFIXES = ((18, "E"), (15, "P"), (12, "T"), (9, "G"), (6, "M"), (3, "k"), (0, ""), (-3, "m"))
_BINARY_SUFFIXES = ((60, "Ei"), (50, "Pi"), (40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki"))


class _QuantityVariableParser(ExpressionParser):
    """The shared expression parser with ``cpu``/``memory`` bound to a quantity (the aggregate)."""

    def _primary(self) -> ExpressionValue:
        token = self._peek()
        following = self.tokens[self.position + 1] if self.position + 1 < len(self.tokens) else None
        is_call = following is not None and following[0] == "symbol" and following[1] == "("
        if token is not None and token[0] == "name" and token[1].lower() in _RESOURCES and not is_call:
            self.position += 1
            return ExpressionValue(self.variable_value, True)
        return super()._primary()


def format_quantity(amount: Decimal, *, binary: bool) -> str:
    """Kubernetes' canonical spelling of a non-negative quantity with milli precision.

    BinarySI (``180Mi``) when ``binary`` and the value is a whole number of at least 1024 bytes;
    otherwise DecimalSI with the largest SI suffix that keeps the mantissa whole (``300m``, ``2k``).
    """
    amount = amount.quantize(_MILLI, rounding=ROUND_DOWN)
    if binary and amount >= 1024 and amount == amount.to_integral_value():
        whole = int(amount)
        for exponent, suffix in _BINARY_SUFFIXES:
            if whole % (2**exponent) == 0:
                return f"{whole // 2**exponent}{suffix}"
        return str(whole)
    milli = int(amount * 1000)
    if milli == 0:
        return "0"
    for exponent, suffix in _DECIMAL_SUFFIXES:
        divisor = 10 ** (exponent + 3)
        if milli % divisor == 0:
            return f"{milli // divisor}{suffix}"
    raise AssertionError("unreachable: every milli value is a multiple of 1m")  # pragma: no cover


def _quantity(
    container: Mapping[str, Any], kind: str, resource: str
) -> tuple[Decimal, QuantityFormat] | None:
    resources = container.get("resources")
    amounts = resources.get(kind) if isinstance(resources, Mapping) else None
    if not isinstance(amounts, Mapping) or amounts.get(resource) is None:
        return None
    # An unparsable quantity counts as unset; the apiserver rejects the pod for it anyway.
    return parse_quantity(amounts[resource])


def _aggregate(
    targets: Sequence[Mapping[str, Any]], kind: str, resource: str, mode: str
) -> tuple[Decimal, bool] | None:
    """``(aggregate, is_binary)``; ``None`` for a limit some target leaves unset (or an unknown mode)."""
    values = [_quantity(target, kind, resource) for target in targets]
    if mode not in ("sum", "max"):
        return None if kind == "limits" else (Decimal(0), False)
    if kind == "limits" and any(value is None for value in values):
        return None
    present = [value for value in values if value is not None]
    amounts = [amount for amount, _ in present] or [Decimal(0)]
    total = sum(amounts, Decimal(0)) if mode == "sum" else max(amounts)
    # Kubernetes' Quantity.Add keeps the receiver's format: the first target's.
    is_binary = bool(present) and present[0][1] is QuantityFormat.BINARY_SI
    return total, is_binary


def _evaluate(expression: str, aggregate: Decimal, aggregate_is_binary: bool, where: str) -> str:
    try:
        value = _QuantityVariableParser(expression, aggregate).parse()
    except ExpressionError as error:
        raise InjectionError(f"{where}: cannot evaluate {expression!r}: {error}") from error
    if value.amount < 0:
        raise InjectionError(f"{where}: {expression!r} evaluates to a negative value")
    mentions_memory = _MEMORY_WORD.search(expression) is not None
    if not value.is_quantity:
        # Kruise's quirk: a plain number is cores, unless the text mentions "memory" (then bytes).
        amount = Decimal(int(value.amount)) if mentions_memory else value.amount
        return format_quantity(amount, binary=False)
    uses_variable = re.search(r"\b(?:cpu|memory)\b", expression, re.IGNORECASE) is not None
    binary = _BINARY_LITERAL.search(expression) is not None or (uses_variable and aggregate_is_binary)
    return format_quantity(value.amount, binary=binary)


def resources_from_policy(
    policy: Mapping[str, Any],
    pod_spec: Mapping[str, Any],
    *,
    excluded_names: Collection[str],
    where: str,
) -> dict[str, Any]:
    """The ``resources`` a sidecar with ``policy`` gets in this pod (it replaces the sidecar's own).

    Raises :class:`InjectionError` when no container matches the regex, the regex does not
    compile, or an expression does not evaluate to a non-negative value. ``where`` names the
    sidecar in those messages.
    """
    init_containers = [item for item in pod_spec.get("initContainers") or () if isinstance(item, Mapping)]
    containers = [item for item in pod_spec.get("containers") or () if isinstance(item, Mapping)]
    pattern_text = str(policy.get("targetContainersNameRegex") or ".*")
    try:
        pattern = re.compile(pattern_text)
    except re.error as error:
        raise InjectionError(
            f"{where}: invalid targetContainersNameRegex {pattern_text!r}: {error}"
        ) from error
    candidates = [item for item in init_containers if item.get("restartPolicy") == "Always"] + containers
    targets = [
        item
        for item in candidates
        if str(item.get("name") or "") not in excluded_names and pattern.search(str(item.get("name") or ""))
    ]
    if not targets:
        raise InjectionError(f"{where}: resourcesPolicy: no containers match {pattern_text!r}")
    mode = str(policy.get("targetContainersMode") or "")
    expressions = policy.get("resourcesExpr") or {}
    resources: dict[str, Any] = {}
    for kind in ("limits", "requests"):
        kind_expressions = expressions.get(kind) or {}
        computed: dict[str, str] = {}
        for resource in _RESOURCES:
            expression = str(kind_expressions.get(resource) or "")
            aggregate = _aggregate(targets, kind, resource, mode)
            # An unlimited target leaves the limit unset; an empty expression sets nothing.
            if not expression.strip() or aggregate is None:
                continue
            computed[resource] = _evaluate(
                expression, aggregate[0], aggregate[1], f"{where} {kind}.{resource}"
            )
        if computed:
            resources[kind] = computed
    return resources
