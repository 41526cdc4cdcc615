"""Who may move a protected alias, and what a candidate must satisfy to receive one.

Design (documented in docs/registry.md):
- Protected aliases are named by `SHOPSCORE_PROTECTED_ALIASES` (comma-separated; default `production`;
  set it to an empty string to protect none).
- Moving or rolling back a protected alias needs either the promoter token (`token=` equal to
  `SHOPSCORE_PROMOTER_TOKEN`) or a registry opened with `role="promoter"` (for trusted automation such as the
  demo or a CI job). This guards against accidents and unreviewed scripts; the database credentials remain
  the real security boundary.
- Before a protected alias moves (not on rollback, which is the emergency exit), the built-in check and
  every plugin's `check_promotion` hook run; any veto refuses the move unless `force=True`.
"""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass, field
from typing import Any

from registry.model_registry.errors import AliasProtected, InvalidInput
from registry.model_registry.records import ModelVersion
from registry.settings import promotion_variables

PROMOTER_ROLE = "promoter"
ROLES = (None, PROMOTER_ROLE)


@dataclass(frozen=True)
class PromotionPolicy:
    protected_aliases: frozenset[str] = field(default_factory=lambda: frozenset({"production"}))
    promoter_token: str | None = None
    # The candidate may be at most this much worse than the current holder on the promotion metric.
    # `metric` is for versions whose lineage declares none (registered before heads declared their task).
    tolerance: float = 0.01
    metric: str = "test_pr_auc"

    @classmethod
    def from_env(cls) -> PromotionPolicy:
        variables = promotion_variables()
        raw_aliases, raw_tolerance = variables.protected_aliases, variables.tolerance
        try:
            tolerance = float(raw_tolerance)
        except ValueError:
            raise InvalidInput(
                f"SHOPSCORE_PROMOTION_TOLERANCE={raw_tolerance!r} is not a number; set it to e.g. 0.01"
            ) from None
        if not math.isfinite(tolerance) or tolerance < 0:
            raise InvalidInput(f"SHOPSCORE_PROMOTION_TOLERANCE must be a finite number >= 0, not {tolerance}")
        return cls(
            protected_aliases=frozenset(a.strip() for a in raw_aliases.split(",") if a.strip()),
            promoter_token=variables.promoter_token,
            tolerance=tolerance,
        )

    def is_protected(self, alias: str) -> bool:
        return alias in self.protected_aliases

    def authorize(self, model: str, alias: str, *, token: str | None, role: str | None) -> None:
        """Raise AliasProtected unless the caller may move this alias."""
        if not self.is_protected(alias) or role == PROMOTER_ROLE:
            return
        if token is not None and self.promoter_token is not None:
            if hmac.compare_digest(token.encode(), self.promoter_token.encode()):
                return
            raise AliasProtected(
                f"alias {alias!r} of model {model!r} is protected and the token given does not match "
                f"SHOPSCORE_PROMOTER_TOKEN; pass the promoter token (--token / token=)"
            )
        how = (
            "pass the promoter token (--token / token=)"
            if self.promoter_token is not None
            else "set SHOPSCORE_PROMOTER_TOKEN on the registry side and pass it (--token / token=)"
        )
        raise AliasProtected(
            f"alias {alias!r} of model {model!r} is protected (SHOPSCORE_PROTECTED_ALIASES); "
            f"to move it, {how}, or open the registry with role='promoter'"
        )

    def builtin_vetoes(self, candidate: ModelVersion, current: ModelVersion | None) -> list[str]:
        """The registry's own check: the same answer over the same label horizon, and no worse on the
        promotion metric (within tolerance). The metric is the one the candidate's head declares (lineage
        `task`, e.g. `test_pr_auc` for binary heads, `test_mae` for amounts), else `metric`."""
        if current is None:  # the first holder has nothing to be compared with
            return []
        reasons = []
        task = candidate.lineage.get("task") or {}
        metric = task.get("promotion_metric", self.metric)
        greater_is_better = task.get("greater_is_better", True)
        new, old = _metric(candidate, metric), _metric(current, metric)
        if new is None:
            reasons.append(
                f"candidate version {candidate.version} has no {metric} metric to compare with version "
                f"{current.version}; register it with metrics[{metric!r}]"
            )
        elif old is not None:
            worse_by = (old - new) if greater_is_better else (new - old)
            if worse_by > self.tolerance:
                reasons.append(
                    f"{metric} of version {candidate.version} is {new:.4f}, worse than {old:.4f} of "
                    f"version {current.version} by more than the tolerance {self.tolerance} "
                    f"(SHOPSCORE_PROMOTION_TOLERANCE)"
                )
        answers = (task.get("answer"), (current.lineage.get("task") or {}).get("answer"))
        if None not in answers and answers[0] != answers[1]:
            reasons.append(
                f"version {candidate.version} answers {answers[0]!r} but version {current.version} answers "
                f"{answers[1]!r}; serve it under another model name"
            )
        if candidate.horizon_days != current.horizon_days:
            reasons.append(
                f"version {candidate.version} predicts a {candidate.horizon_days}-day horizon but version "
                f"{current.version} a {current.horizon_days}-day one; scores would change meaning"
            )
        return reasons


def _metric(version: ModelVersion, name: str) -> float | None:
    value: Any = version.metrics.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def check_role(role: str | None) -> str | None:
    if role not in ROLES:
        raise InvalidInput(f"unknown registry role {role!r}; use None or {PROMOTER_ROLE!r}")
    return role
