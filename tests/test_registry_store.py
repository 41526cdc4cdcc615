"""ModelRegistry's Python API on SQLite and PostgreSQL: what a user registering, aliasing, comparing and
archiving versions sees, including the errors that tell them what to do."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from registry_support import make_lineage, register

from registry.model_registry.artifacts import directory_sha256
from registry.model_registry.errors import (
    ArtifactCorrupted,
    ArtifactMissing,
    InvalidArtifact,
    InvalidInput,
    NothingToRollBack,
    UnknownAlias,
    UnknownModel,
    UnknownVersion,
    VersionArchived,
    VersionInUse,
)
from registry.model_registry.records import ModelVersion
from registry.model_registry.store import ModelRegistry

pytest_plugins = ["registry_fixtures"]


def test_register_version_records_artifact_lineage_metrics(registry: ModelRegistry, model_dir) -> None:
    source = model_dir(seed=1)
    first = register(registry, "purchase", source, pr_auc=0.41)
    second = register(registry, "purchase", model_dir(seed=2), pr_auc=0.43)

    assert isinstance(first, ModelVersion)
    assert (first.model, first.version, second.version) == ("purchase", 1, 2)
    assert first.status == "ready" and first.aliases == () and first.created_by == "tester"
    assert first.created_at.tzinfo is not None
    assert first.lineage == make_lineage()
    assert (first.feature_service, first.horizon_days) == ("purchase_mlp_v1", 7)
    assert first.metrics == {"test_pr_auc": 0.41, "test_roc_auc": 0.7}
    assert first.params == {"lr": 0.001, "epochs": 3}
    assert first.artifact_uri.endswith("/purchase/1")
    assert first.sha256 == directory_sha256(source)
    # what comes back later is what was registered
    assert registry.get_version("purchase", 1) == first


def test_lineage_dates_are_stored_as_iso_strings(registry: ModelRegistry, model_dir) -> None:
    from datetime import UTC, datetime

    cutoff = datetime(2024, 3, 1, tzinfo=UTC)
    version = register(registry, "m", model_dir(), train_cutoffs=[cutoff], test_cutoff=cutoff)
    assert version.lineage["train_cutoffs"] == ["2024-03-01T00:00:00+00:00"]
    json.dumps(version.to_dict())  # everything a version carries prints as JSON


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(model="bad name!"), "invalid model name 'bad name!'"),
        (dict(lineage=make_lineage(horizon_days=None)), "lineage lacks horizon_days"),
        (dict(lineage={"feature_service": "x"}), "lineage lacks feast_project, feature_refs"),
        (dict(lineage=make_lineage(horizon_days=0)), "horizon_days must be a whole number of days >= 1"),
        (dict(lineage=make_lineage(feature_refs="a:b")), "feature_refs must be a list"),
        (dict(metrics={"test_pr_auc": math.nan}), "NaN and infinity are not allowed"),
        (dict(metrics={"test_pr_auc": "high"}), "metric 'test_pr_auc' is 'high'"),
        (dict(params={"fn": object()}), "params cannot be stored as JSON"),
    ],
)
def test_bad_registration_is_refused_and_writes_nothing(
    registry: ModelRegistry, model_dir, artifacts_root: Path, change: dict, message: str
) -> None:
    arguments = (
        dict(model="m", lineage=make_lineage(), metrics={"test_pr_auc": 0.5}, params={"lr": 0.1}) | change
    )
    model = arguments.pop("model")
    with pytest.raises(InvalidInput, match=message):
        registry.register_version(model, model_dir(), **arguments)
    assert registry.models() == []
    assert not artifacts_root.exists() or not any(p.name != ".tmp" for p in artifacts_root.iterdir())


def test_a_directory_without_model_files_is_refused(registry: ModelRegistry, tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(InvalidArtifact, match="lacks model.safetensors; save the model with save_pretrained"):
        register(registry, "m", tmp_path / "half")
    with pytest.raises(InvalidArtifact, match="does not exist"):
        register(registry, "m", tmp_path / "nowhere")
    assert registry.models() == []


def test_unknown_model_version_and_alias_name_the_fix(registry: ModelRegistry, model_dir) -> None:
    with pytest.raises(UnknownModel, match="no registered model named 'nope' .*no models yet"):
        registry.versions("nope")
    register(registry, "m", model_dir())
    register(registry, "m", model_dir())
    with pytest.raises(UnknownModel, match=r"registered models: m\b"):
        registry.get_version("nope", 1)
    with pytest.raises(UnknownVersion, match="model 'm' has no version 7; its versions are 1-2"):
        registry.get_version("m", 7)
    with pytest.raises(UnknownAlias, match="has no alias 'production' .*shopscore models promote m VERSION"):
        registry.resolve("m", "production")
    with pytest.raises(InvalidInput, match="versions are whole numbers"):
        registry.get_version("m", 0)


def test_aliases_move_resolve_and_are_audited(registry: ModelRegistry, model_dir) -> None:
    for _ in range(3):
        register(registry, "m", model_dir())
    first = registry.set_alias("m", "staging", 1, reason="smoke test", actor="ana")
    registry.set_alias("m", "challenger", 3, reason="try it")
    moved = registry.set_alias("m", "staging", 2, reason="better", actor="bo")

    assert registry.resolve("m", "staging").version == 2
    assert (first.from_version, first.to_version, first.actor, first.action) == (None, 1, "ana", "set")
    assert (moved.from_version, moved.to_version, moved.reason) == (1, 2, "better")
    assert [v.aliases for v in registry.versions("m")] == [(), ("staging",), ("challenger",)]
    assert registry.alias_versions("m") == {"staging": 2, "challenger": 3}  # what a server polls
    assert registry.alias_versions("no_such_model") == {}
    events = registry.alias_events("m", "staging")
    assert [(e.from_version, e.to_version) for e in events] == [(None, 1), (1, 2)]
    assert len(registry.alias_events("m")) == 3

    # pointing an alias where it already points changes nothing and returns the move that put it there
    again = registry.set_alias("m", "staging", 2, reason="again")
    assert again == moved and len(registry.alias_events("m")) == 3


def test_alias_moves_validate_first(registry: ModelRegistry, model_dir) -> None:
    register(registry, "m", model_dir())
    with pytest.raises(InvalidInput, match="needs a non-empty reason"):
        registry.set_alias("m", "staging", 1, reason="  ")
    with pytest.raises(InvalidInput, match="invalid alias '1st'"):
        registry.set_alias("m", "1st", 1, reason="x")
    with pytest.raises(UnknownVersion, match="has no version 9"):
        registry.set_alias("m", "staging", 9, reason="x")
    assert registry.alias_events("m") == []


def test_rollback_returns_to_the_previous_version(registry: ModelRegistry, model_dir) -> None:
    for _ in range(3):
        register(registry, "m", model_dir())
    registry.set_alias("m", "staging", 1, reason="a")
    with pytest.raises(NothingToRollBack, match="only ever pointed at version 1"):
        registry.rollback("m", "staging", reason="oops")
    registry.set_alias("m", "staging", 2, reason="b")
    registry.set_alias("m", "staging", 3, reason="c")

    back = registry.rollback("m", "staging", reason="v3 misbehaves", actor="oncall")
    assert (back.from_version, back.to_version, back.action, back.actor) == (3, 2, "rollback", "oncall")
    assert registry.resolve("m", "staging").version == 2
    # rolling back the rollback undoes it
    assert registry.rollback("m", "staging", reason="false alarm").to_version == 3
    with pytest.raises(UnknownAlias):
        registry.rollback("m", "prod", reason="x")


def test_archive_is_refused_while_an_alias_points_at_the_version(registry: ModelRegistry, model_dir) -> None:
    register(registry, "m", model_dir())
    register(registry, "m", model_dir())
    registry.set_alias("m", "staging", 1, reason="a")
    with pytest.raises(VersionInUse, match="version 1 of model 'm' is still the target of alias.*staging"):
        registry.archive("m", 1)
    registry.set_alias("m", "staging", 2, reason="b")
    assert registry.archive("m", 1).status == "archived"
    assert [v.version for v in registry.versions("m", include_archived=False)] == [2]
    with pytest.raises(VersionArchived, match="version 1 of model 'm' is archived"):
        registry.set_alias("m", "staging", 1, reason="back")
    with pytest.raises(VersionArchived, match="cannot roll alias 'staging' of model 'm' back to version 1"):
        registry.rollback("m", "staging", reason="back")


def test_compare_puts_versions_side_by_side(registry: ModelRegistry, model_dir) -> None:
    register(registry, "m", model_dir(), pr_auc=0.40)
    register(registry, "m", model_dir(), pr_auc=0.45, horizon_days=14)
    comparison = registry.compare("m", 1, 2)
    metrics = {d.name: d for d in comparison.metrics}
    assert metrics["test_pr_auc"].delta == pytest.approx(0.05)
    assert metrics["test_roc_auc"].changed is False
    lineage = {d.name: d for d in comparison.lineage}
    assert (lineage["horizon_days"].left, lineage["horizon_days"].right) == (7, 14)
    assert not lineage["feature_service"].changed
    json.dumps(comparison.to_dict())


def test_models_lists_latest_version_and_aliases(registry: ModelRegistry, model_dir) -> None:
    register(registry, "b-model", model_dir())
    register(registry, "a-model", model_dir())
    register(registry, "a-model", model_dir())
    registry.set_alias("a-model", "staging", 1, reason="x")
    listed = registry.models()
    assert [(m.name, m.latest_version, m.version_count, m.aliases) for m in listed] == [
        ("a-model", 2, 2, {"staging": 1}),
        ("b-model", 1, 1, {}),
    ]


def test_versions_filter_by_feature_service(registry: ModelRegistry, model_dir) -> None:
    register(registry, "m", model_dir())
    register(registry, "m", model_dir(), feature_service="purchase_text_v1")
    assert [v.version for v in registry.versions("m", feature_service="purchase_text_v1")] == [2]


def test_fetch_verifies_the_artifact(registry: ModelRegistry, model_dir) -> None:
    register(registry, "m", model_dir())
    registry.set_alias("m", "staging", 1, reason="x")
    version, path = registry.fetch("m", "staging")
    assert version.version == 1 and (path / "model.safetensors").is_file()

    (path / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(ArtifactCorrupted, match="hashes to .* but the registry recorded"):
        registry.fetch("m", 1)
    for file in path.iterdir():
        file.unlink()
    path.rmdir()
    with pytest.raises(ArtifactMissing, match=r"artifact .*/m/1 is missing"):
        registry.fetch("m", 1)


def test_open_defaults_to_the_workspace_sqlite_file(tmp_path: Path, monkeypatch, model_dir) -> None:
    monkeypatch.setenv("SHOPSCORE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SHOPSCORE_DATABASE_URL", raising=False)
    monkeypatch.delenv("SHOPSCORE_ARTIFACTS_DIR", raising=False)
    from registry.plugin_host import PluginHost

    with ModelRegistry.open(upgrade=True, plugins=PluginHost()) as registry:
        version = register(registry, "m", model_dir())
    assert (tmp_path / "home" / "registry.db").is_file()
    assert Path(version.artifact_uri.removeprefix("file://")).parent.parent == tmp_path / "home" / "artifacts"

    other = tmp_path / "elsewhere.db"
    monkeypatch.setenv("SHOPSCORE_DATABASE_URL", f"sqlite:///{other}")
    with ModelRegistry.open(upgrade=True) as registry:
        assert registry.models() == []
    assert other.is_file()


def test_unreachable_database_is_named_with_the_fix(tmp_path: Path) -> None:
    from registry.model_registry.errors import DatabaseUnavailable

    url = "postgresql+psycopg://nobody:secret@127.0.0.1:1/none"
    with pytest.raises(
        DatabaseUnavailable, match=r"cannot open .*nobody:\*\*\*@127.0.0.1:1/none.*SHOPSCORE_DATABASE_URL"
    ):
        ModelRegistry.open(url, artifacts_root=tmp_path)


def test_in_memory_sqlite_works_for_experiments(tmp_path: Path, model_dir) -> None:
    from registry.plugin_host import PluginHost

    with ModelRegistry.open(
        "sqlite://", upgrade=True, artifacts_root=tmp_path / "a", plugins=PluginHost()
    ) as registry:
        register(registry, "m", model_dir())
        assert [v.version for v in registry.versions("m")] == [1]
