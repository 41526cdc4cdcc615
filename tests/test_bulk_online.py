"""The bulk online reader returns exactly what Feast's public get_online_features returns, on the SQLite
default and on Redis: every scalar type, lists and strings, nulls, unknown users, and rows far older than the
view's TTL (Feast returns those online; shopscore masks them itself), with their event times."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.protos.feast.types.Value_pb2 import Value
from feast.types import Array, Bool, Float32, Float64, Int32, Int64, String

from registry.features.bulk_online import (
    BulkReader,
    EntityKeyCodec,
    RedisBulkReader,
    SqliteBulkReader,
    _event_seconds,
    decode_numbers,
    decode_objects,
)

REDIS_DB = 6  # the tests' Redis database; a unique project keeps these keys apart, teardown removes them
NOW = datetime.now(UTC).replace(microsecond=0)
NUMBERS = ["i64", "i32", "f64", "f32", "flag"]
OBJECTS = ["ints", "word"]
UNKNOWN = 10**12


def rows() -> pd.DataFrame:
    """Users 1-6: extremes, negatives, nulls; user 4's row is a year old (far past the 1-day TTL)."""
    stamps = [NOW - timedelta(hours=h) for h in (1, 2, 3, 24 * 365, 5, 6)]
    return pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4, 5, -(2**62)],
            "event_timestamp": stamps,
            "i64": pd.array([0, -1, 2**62, -(2**62), None, 300], dtype="Int64"),
            "i32": pd.array([7, -(2**31), 2**31 - 1, 0, None, -5], dtype="Int32"),
            "f64": [1.5, -0.0, 1e300, np.nan, np.nan, -2.25],
            "f32": np.array([0.1, -3.5, 1e30, 0.0, np.nan, 2.0], dtype="float32"),
            "flag": pd.array([True, False, True, None, None, False], dtype="boolean"),
            "ints": [[1, -2], [], [3], None, None, [2**40]],
            "word": ["a", "", "é", None, None, "z"],
        }
    )


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path) -> FeatureStore:
    project = f"bulk_{uuid.uuid4().hex[:10]}"
    if request.param == "redis":
        redis = pytest.importorskip("redis")
        client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB, socket_connect_timeout=2)
        try:
            client.ping()
        except redis.exceptions.ConnectionError as exc:
            pytest.skip(f"Redis unreachable at 127.0.0.1:6379: {exc}")
        online = {"type": "redis", "connection_string": f"127.0.0.1:6379,db={REDIS_DB}"}
    else:
        online = {"type": "sqlite", "path": str(tmp_path / "online.db")}
    config = RepoConfig(
        project=project,
        provider="local",
        registry=str(tmp_path / "registry.db"),
        online_store=online,
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=str(tmp_path),
    )
    store = FeatureStore(config=config)
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    source = FileSource(path=str(tmp_path / "unused.parquet"), timestamp_field="event_timestamp")
    types = {"i64": Int64, "i32": Int32, "f64": Float64, "f32": Float32, "flag": Bool}
    schema = [Field(name=n, dtype=t) for n, t in types.items()]
    schema += [Field(name="ints", dtype=Array(Int64)), Field(name="word", dtype=String)]
    view = FeatureView(name="mixed", entities=[user], ttl=timedelta(days=1), schema=schema, source=source)
    store.apply([user, view])
    store.write_to_online_store("mixed", rows())
    yield store
    if request.param == "redis":
        for key in client.scan_iter(match=f"*{project}".encode()):
            client.delete(key)


def public(store: FeatureStore, users: list[int]) -> dict[str, list]:
    refs = [f"mixed:{n}" for n in NUMBERS + OBJECTS]
    return store.get_online_features(features=refs, entity_rows=[{"user_id": u} for u in users]).to_dict(
        include_event_timestamps=True
    )


def test_bulk_reads_what_feasts_public_api_returns(store):
    users = [1, 2, UNKNOWN, 3, 4, 5, -(2**62), 1]  # an unknown user and a repeated one, in caller order
    reader = BulkReader.for_store(store, "user_id")
    assert isinstance(reader, (SqliteBulkReader, RedisBulkReader))
    view = store.get_feature_view("mixed")
    expected = public(store, users)

    got = reader.read(view, NUMBERS, users)
    values = np.full((len(users), len(NUMBERS)), np.nan)
    values[got.rows, got.columns] = decode_numbers(got.blobs)
    for column, name in enumerate(NUMBERS):
        want = [np.nan if v is None else float(v) for v in expected[name]]
        assert values[:, column].tolist() == pytest.approx(want, nan_ok=True, rel=0, abs=0), name
    stamps = [float(t or 0) for t in expected["i64__ts"]]
    assert got.event_time.tolist() == stamps
    assert got.event_time[2] == 0 and got.event_time[4] < (NOW - timedelta(days=300)).timestamp()

    got = reader.read(view, OBJECTS, users)
    objects = np.full((len(users), len(OBJECTS)), None, dtype=object)
    for row, column, value in zip(got.rows, got.columns, decode_objects(got.blobs), strict=True):
        objects[row, column] = value
    for column, name in enumerate(OBJECTS):
        assert objects[:, column].tolist() == list(expected[name]), name


def test_a_batch_larger_than_one_sqlite_statement_is_read_in_parts(store, monkeypatch):
    reader = BulkReader.for_store(store, "user_id")
    if not isinstance(reader, SqliteBulkReader):
        pytest.skip("only SQLite splits a batch")
    monkeypatch.setattr(SqliteBulkReader, "MAX_USERS", 3)
    users = [UNKNOWN, 1, 2, 3, 4, 5, -(2**62)]
    got = reader.read(store.get_feature_view("mixed"), ["i64"], users)
    values = np.full(len(users), np.nan)
    values[got.rows] = decode_numbers(got.blobs)
    assert values.tolist() == pytest.approx(
        [np.nan if v is None else float(v) for v in public(store, users)["i64"]], nan_ok=True
    )


def test_decode_numbers_falls_back_to_protobuf_for_other_scalars():
    blobs = [Value(unix_timestamp_val=1_700_000_000), Value(null_val=0), Value(), Value(double_val=2.5)]
    decoded = decode_numbers([b.SerializeToString() for b in blobs] + [None])
    assert decoded.tolist() == pytest.approx([1.7e9, np.nan, np.nan, 2.5, np.nan], nan_ok=True)


@pytest.mark.parametrize(
    "batch",
    [[1, 127], [128, 300, 2**31 - 1], [-1, 5], [2**62, 0, -(2**63)]],  # widest varint 1, 2-5, 10, 10 bytes
    ids=["one-byte", "multi-byte", "negative", "extremes"],
)
def test_decode_numbers_reads_varints_of_every_width(batch):
    blobs = [Value(int64_val=v).SerializeToString() for v in batch] + [
        Value(int32_val=-7).SerializeToString()
    ]
    assert decode_numbers(blobs).tolist() == [float(v) for v in batch] + [-7.0]


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_event_times_convert_as_feasts_online_read_does(zone, monkeypatch):
    # Feast stores int(naive UTC time read as local time) and converts back through local time: the
    # shortcut for a UTC machine and the per-user path elsewhere must both give Feast's answer.
    import time

    from feast.infra.online_stores.sqlite import convert_timestamp

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        stored = [0, 1_700_000_000, 1_720_000_000]  # winter and summer: DST moves New York's offset
        feast = [convert_timestamp(s).replace(tzinfo=UTC).timestamp() for s in stored]
        assert _event_seconds(stored).tolist() == feast
    finally:
        monkeypatch.undo()
        time.tzset()


def test_entity_key_codec_refuses_a_layout_it_cannot_reproduce(monkeypatch):
    import registry.features.bulk_online as bulk

    assert EntityKeyCodec.for_join_key("user_id", 3) is not None
    monkeypatch.setattr(bulk, "serialize_entity_key", lambda key, **kw: str(key).encode())
    assert EntityKeyCodec.for_join_key("user_id", 3) is None
