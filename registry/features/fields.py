"""The feature-service field contract: what each FeatureService gives an encoder, field by field.

Read from the feature repo's own Feast declarations (names, types, descriptions with units and sentinels,
the view's TTL), so the contract cannot drift from what Feast serves. `shopscore features fields` prints it
and docs/plugins.md holds a copy that a test keeps equal.

The names themselves (views, services, columns, windows, files, stable ids) are declared once in
registry/features/contract.py, which the feature repo builds its declarations from; this module reads the
result back, with what only the declarations hold (Feast types, descriptions, TTLs). Two modules because
the two sit on either side of the feature repo: the contract is imported by it (and by the builders, with
no Feast), this one imports Feast and loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from feast import FeatureService, FeatureView, OnDemandFeatureView

# What a missing value means, for every field of every service.
NULLS = (
    "null (NaN in numeric columns, None in list and string columns) when the online store or the point-in-time "
    "join has no row for the user (cold start), or the view's newest row is older than its TTL"
)


@dataclass(frozen=True)
class FeatureField:
    service: str
    view: str
    name: str
    dtype: str  # Feast's type, e.g. Int64, Float64, Array(Int64), String
    description: str
    ttl_days: float | None  # None: no TTL (on-demand views are computed at request time)


def feature_fields(feature_repo: Path | None = None) -> dict[str, list[FeatureField]]:
    """Service name -> its fields in the order an encoder receives them (the repo of the settings by default)."""
    from registry.features.feast_store import load_declarations
    from registry.settings import Settings

    objects = load_declarations(feature_repo or Settings.from_env().feature_repo).objects
    views = {o.name: o for o in objects if isinstance(o, (FeatureView, OnDemandFeatureView))}
    out: dict[str, list[FeatureField]] = {}
    for service in sorted((o for o in objects if isinstance(o, FeatureService)), key=lambda s: s.name):
        fields = []
        for projection in service.feature_view_projections:
            view = views.get(projection.name)
            ttl = getattr(view, "ttl", None)
            tags = getattr(view, "tags", {}) or {}
            for f in projection.features:
                fields.append(
                    FeatureField(
                        service=service.name,
                        view=projection.name,
                        name=f.name,
                        dtype=str(f.dtype),
                        description=f.description or tags.get(f.name, ""),
                        ttl_days=ttl.total_seconds() / 86400 if ttl else None,
                    )
                )
        out[service.name] = fields
    return out


def markdown(fields: dict[str, list[FeatureField]]) -> str:
    """The contract as Markdown (the copy in docs/plugins.md): which views each service reads, then each
    view's fields with type and meaning."""
    lines = ["| feature service | feature views, in field order |", "|---|---|"]
    views: dict[str, list[FeatureField]] = {}
    for service, rows in fields.items():
        names = list(dict.fromkeys(f.view for f in rows))
        lines.append(f"| `{service}` | {', '.join(f'`{v}`' for v in names)} |")
        for f in rows:
            views.setdefault(f.view, [])
            if f.name not in {g.name for g in views[f.view]}:
                views[f.view].append(f)
    for view, rows in sorted(views.items()):
        ttl = "computed at request time" if rows[0].ttl_days is None else f"TTL {rows[0].ttl_days:g} days"
        lines += ["", f"`{view}` ({ttl}):", "", "| field | type | meaning |", "|---|---|---|"]
        lines += [f"| `{f.name}` | {f.dtype} | {f.description} |" for f in rows]
    return "\n".join(lines) + "\n"
