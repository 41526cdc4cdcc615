"""Importers: exact counts on the real samples, every quarantine reason, idempotent re-import, the CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from bench.perf.importer import generate as generate_rees46_file
from registry.cli import main as shopscore
from registry.events import importers
from registry.events.importers import ImportFormatError, ImportSummary, import_events
from registry.events.schema import COLUMNS, read_events

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REES46 = DATA / "samples" / "rees46_2019oct_head.csv"
TAOBAO = DATA / "samples" / "taobao_userbehavior_head.csv"
DIGI_PURCHASES = DATA / "samples" / "diginetica_train_purchases.csv"
DIGI_VIEWS = DATA / "samples" / "diginetica_sample_item_views.csv"
CDNOW = DATA / "cdnow" / "CDNOW_master.txt"

REES46_HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
GOOD_REES46 = "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,abc-1"


def real(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real sample {path} is absent (expected the shared data checkout beside the project)")
    return path


def physical_lines(path: Path) -> list[bytes]:
    """Lines as a byte-level count sees them (a last line without a newline still counts)."""
    return path.read_bytes().splitlines()


def quarantine(summary: ImportSummary) -> list[dict]:
    assert summary.quarantine_path is not None
    return [json.loads(line) for line in summary.quarantine_path.read_text(encoding="utf-8").splitlines()]


def assert_reconciles(summary: ImportSummary, events_dir: Path) -> None:
    """The counts add up and the disk holds exactly `written` rows (events_dir holds this import only)."""
    assert summary.read == summary.written + summary.quarantined + summary.duplicates_skipped
    on_disk = sum(pq.read_metadata(part).num_rows for part in events_dir.glob("date=*/*.parquet"))
    assert on_disk == summary.written
    assert summary.reconciles
    assert sum(summary.by_event_type.values()) == summary.written
    assert sum(summary.quarantine_reasons.values()) == summary.quarantined
    if summary.quarantined:
        assert len(quarantine(summary)) == summary.quarantined
    else:
        assert summary.quarantine_path is None


def write_lines(path: Path, *lines: str | bytes, newline: bytes = b"\n") -> Path:
    path.write_bytes(newline.join(x if isinstance(x, bytes) else x.encode() for x in lines) + newline)
    return path


# ------------------------------------------------------------------------------------------ real samples


@pytest.fixture(scope="module")
def rees46_import(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImportSummary, Path]:
    out = tmp_path_factory.mktemp("rees46") / "events"
    return import_events(real(REES46), "rees46", out), out


def test_rees46_sample_counts_exactly(rees46_import: tuple[ImportSummary, Path]) -> None:
    summary, out = rees46_import
    lines = physical_lines(REES46)[1:]
    complete = [line.decode().split(",") for line in lines if line.count(b",") == 8]
    assert (len(lines), len(complete)) == (17435, 17434)  # the sample's last line is cut mid-row
    assert (summary.read, summary.written, summary.quarantined) == (len(lines), len(complete), 1)
    assert summary.by_event_type == dict(Counter(fields[1] for fields in complete))
    assert summary.by_event_type == {"view": 17055, "cart": 165, "purchase": 214}
    assert_reconciles(summary, out)
    events = read_events(out)
    assert len(events) == summary.written
    assert events["user_id"].dtype == "int64" and list(events.columns) == list(COLUMNS)


def test_rees46_truncated_last_line_is_quarantined_with_line_and_raw(
    rees46_import: tuple[ImportSummary, Path],
) -> None:
    summary, _ = rees46_import
    [record] = quarantine(summary)
    last = physical_lines(REES46)[-1].decode()
    assert record == {
        "line": len(physical_lines(REES46)),
        "code": "field_count",
        "reason": "expected 9 fields, found 8; the line is truncated or has an unquoted separator",
        "raw": last,
    }


def test_rees46_values_are_mapped_not_invented(rees46_import: tuple[ImportSummary, Path]) -> None:
    _, out = rees46_import
    events = read_events(out)
    first = next(csv.reader(physical_lines(REES46)[1].decode().splitlines()))
    row = events[(events["session_id"] == first[8]) & (events["item_id"] == int(first[2]))].iloc[0]
    assert row["event_time"] == pd.Timestamp("2019-10-01 00:00:00", tz="UTC")
    assert (row["user_id"], row["event_type"], row["category"]) == (int(first[7]), first[1], first[3])
    assert (row["brand"], row["price"]) == (first[5], float(first[6]))
    assert pd.isna(row["quantity"]) and pd.isna(row["query"])  # REES46 has neither: null, never invented
    assert events["brand"].isna().sum() == sum(
        1 for x in physical_lines(REES46)[1:-1] if x.split(b",")[5] == b""
    )


def test_taobao_sample_counts_exactly(tmp_path: Path) -> None:
    lines = [line.decode().split(",") for line in physical_lines(real(TAOBAO))]
    summary = import_events(TAOBAO, "taobao", tmp_path)
    names = {"pv": "view", "cart": "cart", "fav": "favorite", "buy": "purchase"}
    assert (
        (summary.read, summary.written, summary.quarantined) == (len(lines), len(lines), 0) == (4321, 4321, 0)
    )
    assert summary.by_event_type == {names[k]: n for k, n in Counter(x[3] for x in lines).items()}
    assert summary.by_event_type == {"view": 3926, "cart": 190, "favorite": 128, "purchase": 77}
    assert_reconciles(summary, tmp_path)
    events = read_events(tmp_path)
    assert events["user_id"].nunique() == 43
    first = lines[0]
    row = events[(events["user_id"] == int(first[0])) & (events["item_id"] == int(first[1]))].iloc[0]
    assert row["event_time"] == pd.Timestamp(int(first[4]), unit="s", tz="UTC")
    assert row["category"] == first[2]


@pytest.mark.parametrize(
    ("path", "read", "written", "event_type"),
    [(DIGI_PURCHASES, 18025, 6703, "purchase"), (DIGI_VIEWS, 12391, 4710, "view")],
    ids=["purchases", "views"],
)
def test_diginetica_samples_count_exactly_and_quarantine_anonymous_rows(
    tmp_path: Path, path: Path, read: int, written: int, event_type: str
) -> None:
    rows = [line.decode().split(";") for line in physical_lines(real(path))[1:]]
    anonymous = sum(1 for r in rows if r[1] == "NA")
    summary = import_events(path, "diginetica", tmp_path)
    assert (summary.read, summary.written, summary.quarantined) == (
        len(rows),
        len(rows) - anonymous,
        anonymous,
    )
    assert (summary.read, summary.written) == (read, written)
    assert summary.by_event_type == {event_type: written}
    assert summary.quarantine_reasons == {"missing_user_id": anonymous}
    assert quarantine(summary)[0]["reason"] == "missing user id in userId ('NA'); every event needs a user"
    assert_reconciles(summary, tmp_path)


def test_diginetica_times_keep_the_eventdate_and_the_session_order(tmp_path: Path) -> None:
    summary = import_events(real(DIGI_PURCHASES), "diginetica", tmp_path)
    rows = pd.read_csv(DIGI_PURCHASES, sep=";", dtype=str, keep_default_na=False)
    rows = rows[rows["userId"] != "NA"]
    events = read_events(tmp_path)
    assert summary.written == len(events) == len(rows)
    # Every event lands on its own eventdate ...
    assert Counter(events["event_time"].dt.strftime("%Y-%m-%d")) == Counter(rows["eventdate"])
    # ... and within a session, the time differences are exactly the timeframe differences.
    by_session = events.assign(tf=events["event_time"].astype("int64") // 1_000_000).groupby("session_id")[
        "tf"
    ]
    expected = rows.assign(tf=rows["timeframe"].astype("int64")).groupby("sessionId")["tf"]
    spans = (by_session.max() - by_session.min()).to_dict()
    assert spans == (expected.max() - expected.min()).to_dict()
    assert len(spans) == 4585 and max(spans.values()) > 86_400_000  # some sessions span several days


def test_diginetica_result_does_not_depend_on_chunk_size(tmp_path: Path) -> None:
    import_events(real(DIGI_VIEWS), "diginetica", tmp_path / "one")
    import_events(DIGI_VIEWS, "diginetica", tmp_path / "many", chunk_rows=4999)  # splits sessions
    pd.testing.assert_frame_equal(read_events(tmp_path / "one"), read_events(tmp_path / "many"))


def test_cdnow_counts_exactly_with_unit_price_and_quantity(tmp_path: Path) -> None:
    rows = [line.split() for line in physical_lines(real(CDNOW))[1:]]
    summary = import_events(CDNOW, "cdnow", tmp_path)
    assert (
        (summary.read, summary.written, summary.quarantined) == (len(rows), len(rows), 0) == (69659, 69659, 0)
    )
    assert summary.by_event_type == {"purchase": 69659}
    assert_reconciles(summary, tmp_path)
    events = read_events(tmp_path)
    assert events["user_id"].nunique() == 23570
    assert events["quantity"].sum() == sum(int(r[2]) for r in rows)
    # price is the unit price: price * quantity gives back the dollar value of every row
    totals = (events["price"] * events["quantity"].astype("float64")).sum()
    assert totals == pytest.approx(sum(float(r[3]) for r in rows), rel=1e-12)
    assert events["event_time"].min() == pd.Timestamp("1997-01-01", tz="UTC")
    assert events["event_time"].max() == pd.Timestamp("1998-06-30", tz="UTC")


# ------------------------------------------------------------------------------------------ quarantine


def _future() -> str:
    return (pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S UTC")


def rees46_line(**fields: str) -> str:
    """A REES46 data line with the given fields replaced."""
    line = {
        "event_time": "2019-10-01 00:00:00 UTC", "event_type": "view", "product_id": "1", "category_id": "2",
        "category_code": "", "brand": "b", "price": "1.0", "user_id": "5", "user_session": "s",
    }  # fmt: skip
    return ",".join({**line, **fields}.values())


# (id, line, code, reason pattern): every quarantine reason a REES46 line can hit.
REES46_BAD_LINES = [
    (
        "truncated",
        rees46_line().rsplit(",", 1)[0],
        "field_count",
        r"^expected 9 fields, found 8; the line is trunc",
    ),
    ("extra field", rees46_line() + ",x", "field_count", r"^expected 9 fields, found 10"),
    ("empty line", "", "empty_line", r"^empty line; every data line must hold one event$"),
    (
        "garbage time",
        rees46_line(event_time="yesterday"),
        "bad_timestamp",
        r"^unparseable timestamp 'yesterday'",
    ),
    (
        "month 13",
        rees46_line(event_time="2019-13-01 00:00:00 UTC"),
        "bad_timestamp",
        r"'2019-13-01 00:00:00 UTC'",
    ),
    ("day 32", rees46_line(event_time="2019-10-32 00:00:00 UTC"), "bad_timestamp", r"^unparseable timestamp"),
    (
        "year 1900",
        rees46_line(event_time="1900-01-01 00:00:00 UTC"),
        "impossible_timestamp",
        r"before 1990-01-01",
    ),
    ("future", rees46_line(event_time=_future()), "impossible_timestamp", r"more than 1 day in the future"),
    ("event type", rees46_line(event_type="click"), "unknown_event_type", r"^unknown event type 'click'"),
    ("negative price", rees46_line(price="-1.5"), "negative_price", r"^negative price '-1.5' in price"),
    ("text price", rees46_line(price="abc"), "bad_price", r"^non-numeric price 'abc' in price"),
    ("infinite price", rees46_line(price="inf"), "bad_price", r"^non-numeric price 'inf'"),
    ("no user", rees46_line(user_id=""), "missing_user_id", r"^missing user id in user_id \(''\)"),
    ("text user", rees46_line(user_id="u12"), "bad_user_id", r"^unparseable user id 'u12'"),
    ("huge user", rees46_line(user_id="9223372036854775808"), "bad_user_id", r"canonical user_id is int64"),
    ("bad item", rees46_line(product_id="x1"), "bad_item_id", r"^unparseable product_id 'x1'"),
    ("open quote", rees46_line(brand='"acme'), "malformed_line", r"^malformed CSV line"),
    ("stray CR", rees46_line(brand="b\r"), "malformed_line", r"^malformed CSV line \(new-line character"),
    ("NUL byte", rees46_line(brand="b\x00"), "malformed_line", r"^malformed CSV line \(line contains NUL"),
]


@pytest.mark.parametrize(
    ("line", "code", "reason"), [c[1:] for c in REES46_BAD_LINES], ids=[c[0] for c in REES46_BAD_LINES]
)
def test_each_bad_row_is_quarantined_with_its_reason(
    tmp_path: Path, line: str, code: str, reason: str
) -> None:
    source = write_lines(tmp_path / "bad.csv", REES46_HEADER, GOOD_REES46, line, GOOD_REES46)
    summary = import_events(source, "rees46", tmp_path / "events")
    assert (summary.read, summary.written, summary.quarantined) == (3, 2, 1)
    assert summary.quarantine_reasons == {code: 1}
    [record] = quarantine(summary)
    assert (record["line"], record["code"], record["raw"]) == (3, code, line)
    assert re.search(reason, record["reason"]), record["reason"]
    assert len(read_events(tmp_path / "events")) == 2


def test_one_undecodable_byte_quarantines_one_line_not_the_file(tmp_path: Path) -> None:
    bad = GOOD_REES46.replace("shiseido", "shis\xffido").encode("latin-1")
    source = write_lines(
        tmp_path / "bytes.csv", REES46_HEADER, GOOD_REES46, bad, GOOD_REES46, newline=b"\r\n"
    )
    summary = import_events(source, "rees46", tmp_path / "events")
    assert (summary.read, summary.written, summary.quarantined) == (3, 2, 1)
    [record] = quarantine(summary)
    assert record["code"] == "undecodable" and record["line"] == 3
    at = GOOD_REES46.index("shiseido") + 4
    assert record["reason"].startswith(
        f"undecodable bytes b'\\xff' at byte {at}: the line is not UTF-8; re-encode"
    )
    assert record["raw"] == GOOD_REES46.replace("shiseido", "shis\\xffido")


def test_quoted_fields_with_commas_are_valid(tmp_path: Path) -> None:
    quoted = '"2019-10-01 00:00:00 UTC",view,1,2,"a.b","acme, inc.",1.5,7,"s,1"'
    source = write_lines(tmp_path / "q.csv", REES46_HEADER, quoted, GOOD_REES46)
    summary = import_events(source, "rees46", tmp_path / "events")
    assert (summary.written, summary.quarantined) == (2, 0)
    events = read_events(tmp_path / "events")
    row = events[events["user_id"] == 7].iloc[0]
    assert (row["brand"], row["session_id"], row["price"]) == ("acme, inc.", "s,1", 1.5)


def test_every_reason_in_one_file_across_many_chunks_reconciles(tmp_path: Path) -> None:
    bad = [line for _, line, _, _ in REES46_BAD_LINES]
    lines = [REES46_HEADER] + [x for pair in zip([GOOD_REES46] * len(bad), bad, strict=True) for x in pair]
    source = write_lines(tmp_path / "mixed.csv", *lines)
    summary = import_events(source, "rees46", tmp_path / "events", chunk_rows=3)
    assert (summary.read, summary.written, summary.quarantined) == (2 * len(bad), len(bad), len(bad))
    records = quarantine(summary)
    assert [r["line"] for r in records] == [2 * i + 3 for i in range(len(bad))]  # header is line 1
    assert [r["code"] for r in records] == [code for _, _, code, _ in REES46_BAD_LINES]
    assert_reconciles(summary, tmp_path / "events")


def test_a_row_failing_several_checks_lists_every_reason(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "multi.csv", REES46_HEADER, "1900-01-01 00:00:00 UTC,click,1,2,,b,-3,u,s")
    [record] = quarantine(import_events(source, "rees46", tmp_path / "events"))
    assert record["code"] == "impossible_timestamp"
    for part in (
        "before 1990-01-01",
        "unknown event type 'click'",
        "unparseable user id 'u'",
        "negative price",
    ):
        assert part in record["reason"]


def test_byte_order_mark_is_ignored_and_the_hash_is_the_files(tmp_path: Path) -> None:
    rees = write_lines(tmp_path / "bom.csv", b"\xef\xbb\xbf" + REES46_HEADER.encode(), GOOD_REES46)
    taobao = write_lines(tmp_path / "bom_taobao.csv", b"\xef\xbb\xbf1,2,3,pv,1511544070")
    for source, fmt in ((rees, "rees46"), (taobao, "taobao")):
        summary = import_events(source, fmt, tmp_path / "events")
        assert (summary.read, summary.written) == (1, 1)
        assert summary.content_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()


def test_wrong_header_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "x.csv", "a,b,c", "1,2,3")
    with pytest.raises(
        ImportFormatError, match=r"rees46 file has header \['a', 'b', 'c'\], expected .*--format csv"
    ):
        import_events(source, "rees46", tmp_path / "events")
    assert not (tmp_path / "events").exists()


def test_empty_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(ImportFormatError, match=r"is empty; expected a header line"):
        import_events(tmp_path / "empty.csv", "rees46", tmp_path / "events")


# ------------------------------------------------------------------------------------------ other formats


def test_retailrocket_maps_events_and_millisecond_times(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "events.csv",
        "timestamp,visitorid,event,itemid,transactionid",
        "1433221332117,257597,view,355908,",
        "1433224214164,992329,addtocart,248676,",
        "1433221999827,111016,transaction,318965,4000",
        "1433221999827,111016,click,318965,",
        "1433221999,111016,view,318965,",
        "99999999999999999,111016,view,318965,",
        "abc,111016,view,318965,",
    )
    summary = import_events(source, "retailrocket", tmp_path / "events")
    assert (summary.read, summary.written, summary.quarantined) == (7, 3, 4)
    assert summary.by_event_type == {"view": 1, "cart": 1, "purchase": 1}
    reasons = [r["reason"] for r in quarantine(summary)]
    assert reasons[0].startswith("unknown event type 'click' in event; expected one of ['addtocart'")
    assert "before 1990-01-01" in reasons[1]  # seconds where milliseconds are expected: 1970
    assert "more than 1 day in the future" in reasons[2]
    assert reasons[3] == "unparseable timestamp 'abc' in timestamp; expected epoch ms (an integer)"
    events = read_events(tmp_path / "events")
    assert events["event_time"].iloc[0] == pd.Timestamp(1433221332117, unit="ms", tz="UTC")


def test_taobao_unknown_behaviour_and_bad_ids(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "UserBehavior.csv",
        "1,2268318,2520377,pv,1511544070",
        "1,2,3,like,1511544070",
        "x,2,3,pv,1511544070",
    )
    summary = import_events(source, "taobao", tmp_path / "events")
    assert (summary.read, summary.written, summary.quarantine_reasons) == (
        3,
        1,
        {"unknown_event_type": 1, "bad_user_id": 1},
    )
    assert quarantine(summary)[0]["reason"] == (
        "unknown event type 'like' in behavior_type; expected one of ['buy', 'cart', 'fav', 'pv']"
    )


def test_cdnow_zero_cds_and_bad_date_are_quarantined(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "cd.txt",
        " customer_id  date number_of_cds  dollar_value",
        " 00001 19970101  2   11.00",
        " 00002 19970101  0   11.00",
        " 00003 19971301  1   11.00",
        " 00004 19970101  1   -1",
        " 00005 19970101  1",
        newline=b"\r\n",
    )
    summary = import_events(source, "cdnow", tmp_path / "events")
    assert (summary.read, summary.written, summary.quarantined) == (5, 1, 4)
    codes = [r["code"] for r in quarantine(summary)]
    assert codes == ["bad_quantity", "bad_timestamp", "negative_price", "field_count"]
    assert (
        quarantine(summary)[0]["reason"]
        == "number_of_cds '0' is not a positive count; a quantity must be >= 1"
    )
    row = read_events(tmp_path / "events").iloc[0]
    assert (row["user_id"], row["quantity"], row["price"]) == (1, 2, 5.5)


def test_diginetica_queries_become_search_events(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "train-queries.csv",
        "queryId;sessionId;userId;timeframe;duration;eventdate;searchstring.tokens;categoryId;items;is.test",
        "1;1;5;0;10;2016-05-09;16655,244087;;29,45;FALSE",
        "2;1;5;90000;10;2016-05-09;;1096;29,45;FALSE",
        "3;2;6;-5;10;2016-05-09;;1096;29;FALSE",
    )
    summary = import_events(source, "diginetica", tmp_path / "events")
    assert (summary.written, summary.quarantine_reasons) == (2, {"bad_timestamp": 1})
    assert quarantine(summary)[0]["reason"].startswith("unparseable timeframe '-5'; expected milliseconds")
    events = read_events(tmp_path / "events")
    assert list(events["event_type"]) == ["search", "search"]
    assert events["query"].iloc[0] == "16655,244087" and pd.isna(events["category"].iloc[0])
    assert events["event_time"].iloc[1] - events["event_time"].iloc[0] == pd.Timedelta(seconds=90)


def test_diginetica_inconsistent_session_dates_are_quarantined(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "views.csv",
        "sessionId;userId;itemId;timeframe;eventdate",
        "1;5;10;0;2016-05-09",
        "1;5;11;1000;2016-05-12",  # 1 s after the session start, yet three days later
    )
    summary = import_events(source, "diginetica", tmp_path / "events")
    assert summary.quarantine_reasons == {"inconsistent_timestamp": 1}
    assert "disagree with the session's other events" in quarantine(summary)[0]["reason"]


def test_diginetica_unknown_header_is_refused(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "x.csv", "a;b", "1;2")
    with pytest.raises(ImportFormatError, match=r"expected the ';'-separated header of the views"):
        import_events(source, "diginetica", tmp_path / "events")


GENERIC_MAPPING = {
    "event_time": "ts",
    "user_id": "uid",
    "event_type": "action",
    "item_id": "sku",
    "price": "amount",
}


def test_csv_with_mapping_and_event_map(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "shop.csv",
        "uid,ts,action,sku,amount,ignored",
        "7,2024-03-01T10:00:00Z,seen,11,2.5,x",
        "7,2024-03-01 11:00:00,basket,11,,x",
        "8,1709290800000,purchase,12,3,x",  # epoch ms; canonical values map to themselves
        "8,1709290800,bought,12,3,x",  # epoch s
        "9,2024-03-01T10:00:00+02:00,wishlist,12,3,x",
        "9,not a date,seen,12,3,x",
    )
    summary = import_events(
        source,
        "csv",
        tmp_path / "events",
        mapping=GENERIC_MAPPING,
        event_map={"seen": "view", "basket": "cart"},
    )
    assert (summary.read, summary.written, summary.quarantined) == (6, 3, 3)
    assert summary.by_event_type == {"view": 1, "cart": 1, "purchase": 1}
    assert [r["code"] for r in quarantine(summary)] == ["unknown_event_type"] * 2 + ["bad_timestamp"]
    events = read_events(tmp_path / "events")
    assert list(events["event_time"]) == [
        pd.Timestamp("2024-03-01 10:00", tz="UTC"),
        pd.Timestamp("2024-03-01 11:00", tz="UTC"),
        pd.Timestamp(1709290800000, unit="ms", tz="UTC"),
    ]
    assert pd.isna(events["price"].iloc[1]) and events["item_id"].iloc[0] == 11


def test_parquet_with_mapping(tmp_path: Path) -> None:
    table = pa.table(
        {
            "when": pa.array(
                pd.to_datetime(["2024-03-01 10:00", "2024-03-02 10:00", "1900-01-01 00:00"]),
                pa.timestamp("us"),
            ),
            "who": pa.array([1, 2, 3], pa.int64()),
            "what": ["view", "buy", "view"],
            "cost": [1.0, -2.0, 3.0],
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    mapping = {"event_time": "when", "user_id": "who", "event_type": "what", "price": "cost"}
    summary = import_events(
        tmp_path / "events.parquet",
        "csv",
        tmp_path / "events",
        mapping=mapping,
        event_map={"buy": "purchase"},
    )
    assert (summary.read, summary.written, summary.quarantined) == (3, 1, 2)
    records = quarantine(summary)
    assert [r["line"] for r in records] == [2, 3] and records[0]["code"] == "negative_price"
    assert json.loads(records[0]["raw"]) == {
        "when": "2024-03-02 10:00:00",
        "who": "2",
        "what": "buy",
        "cost": "-2.0",
    }


@pytest.mark.parametrize(
    ("mapping", "event_map", "match"),
    [
        ({"event_time": "ts"}, None, r"needs a mapping for \['user_id', 'event_type'\]"),
        ({**GENERIC_MAPPING, "colour": "c"}, None, r"unknown canonical column\(s\) \['colour'\]"),
        (
            {**GENERIC_MAPPING, "brand": "maker"},
            None,
            r"source column\(s\) \{'brand': 'maker'\} that the file",
        ),
        (GENERIC_MAPPING, {"seen": "look"}, r"non-canonical type\(s\) \{'seen': 'look'\}"),
    ],
    ids=["required", "unknown-canonical", "missing-source", "bad-event-map"],
)
def test_csv_mapping_errors_name_the_fix(
    tmp_path: Path, mapping: dict, event_map: dict | None, match: str
) -> None:
    source = write_lines(tmp_path / "shop.csv", "uid,ts,action,sku,amount", "7,2024-03-01,view,1,1")
    with pytest.raises(ImportFormatError, match=match):
        import_events(source, "csv", tmp_path / "events", mapping=mapping, event_map=event_map)


def test_unknown_format_and_fixed_layout_options_are_refused(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "x.csv", REES46_HEADER, GOOD_REES46)
    with pytest.raises(ImportFormatError, match=r"unknown format 'amazon'; expected one of \['rees46'"):
        import_events(source, "amazon", tmp_path / "events")
    with pytest.raises(ImportFormatError, match=r"apply to --format csv only; rees46 has a fixed layout"):
        import_events(source, "rees46", tmp_path / "events", mapping={"user_id": "u"})


# ------------------------------------------------------------------------------------------ idempotency


def part_files(events_dir: Path) -> list[Path]:
    return sorted(events_dir.glob("date=*/*.parquet"))


def test_importing_the_same_file_twice_does_not_duplicate(tmp_path: Path) -> None:
    source = write_lines(
        tmp_path / "a.csv", REES46_HEADER, GOOD_REES46, GOOD_REES46.replace("541312140", "7")
    )
    out = tmp_path / "events"
    first = import_events(source, "rees46", out, chunk_rows=1)
    parts = part_files(out)
    second = import_events(source, "rees46", out, chunk_rows=1)
    assert first.to_dict() | {"seconds": 0} == second.to_dict() | {"seconds": 0}
    assert part_files(out) == parts and len(parts) == 2
    assert len(read_events(out)) == 2
    assert not (out / "_staging").exists()


def test_reimporting_an_edited_file_replaces_its_old_events(tmp_path: Path) -> None:
    out = tmp_path / "events"
    other = write_lines(tmp_path / "other.csv", REES46_HEADER, GOOD_REES46.replace("541312140", "99"))
    import_events(other, "rees46", out)
    source = write_lines(tmp_path / "a.csv", REES46_HEADER, GOOD_REES46, "bad line")
    first = import_events(source, "rees46", out)
    assert first.quarantine_path is not None and first.quarantine_path.exists()
    write_lines(
        source, REES46_HEADER, GOOD_REES46.replace("2019-10-01", "2019-10-02").replace("541312140", "5")
    )
    second = import_events(source, "rees46", out)
    assert second.quarantine_path is None and not first.quarantine_path.exists()
    events = read_events(out)
    assert sorted(events["user_id"]) == [5, 99]  # the other source's events are untouched
    assert sorted(p.parent.name for p in part_files(out)) == ["date=2019-10-01", "date=2019-10-02"]


def test_a_failed_import_leaves_the_previous_import_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "events"
    source = write_lines(tmp_path / "a.csv", REES46_HEADER, GOOD_REES46, GOOD_REES46)
    import_events(source, "rees46", out)
    before = read_events(out)
    write_lines(source, REES46_HEADER, *[GOOD_REES46.replace("541312140", str(i)) for i in range(5)])
    calls = []

    def failing_write(frame: pd.DataFrame, events_dir: Path, *, part_name: str) -> list[Path]:
        calls.append(part_name)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(frame, events_dir, part_name=part_name)

    original = importers.write_event_parts
    monkeypatch.setattr(importers, "write_event_parts", failing_write)
    with pytest.raises(OSError, match="disk full"):
        import_events(source, "rees46", out, chunk_rows=2)
    pd.testing.assert_frame_equal(read_events(out), before)
    assert not (out / "_staging").exists()


def test_drop_duplicates_counts_exact_repeats_across_chunks(tmp_path: Path) -> None:
    lines = physical_lines(real(REES46))[1:-1]
    # canonical events drop category_code, so two lines differing only there are the same event
    keys = [tuple(x.split(b",")[:4] + x.split(b",")[5:]) for x in lines]
    repeats = len(keys) - len(set(keys))
    assert repeats == 5
    summary = import_events(REES46, "rees46", tmp_path / "events", chunk_rows=4000, drop_duplicates=True)
    assert (summary.written, summary.duplicates_skipped, summary.quarantined) == (
        len(lines) - repeats,
        repeats,
        1,
    )
    assert summary.read == summary.written + summary.quarantined + summary.duplicates_skipped
    assert not read_events(tmp_path / "events").duplicated().any()


def test_summary_json_round_trips(rees46_import: tuple[ImportSummary, Path]) -> None:
    summary, _ = rees46_import
    data = json.loads(summary.to_json())
    assert data["read"] == 17435 and data["by_event_type"]["view"] == 17055 and data["reconciles"] is True
    assert data["content_sha256"] == hashlib.sha256(REES46.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------ CLI


def import_cli(args: list[str], **kwargs: object) -> Result:
    """`shopscore events import ARGS`, through the root command as a user types it."""
    return CliRunner().invoke(shopscore, ["events", "import", *args], **kwargs)


def test_cli_prints_a_summary(tmp_path: Path) -> None:
    result = import_cli([str(real(TAOBAO)), "-f", "taobao", "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("imported taobao_userbehavior_head.csv as taobao")
    assert "read 4,321 = written 4,321 + quarantined 0" in result.output


@pytest.mark.parametrize(
    ("name", "fmt", "counts"),
    [(REES46, "rees46", (17_435, 17_434, 1)), (TAOBAO, "taobao", (4_321, 4_321, 0))],
)
def test_cli_json_line_has_the_exact_counts_of_the_real_samples(
    tmp_path: Path, name: str, fmt: str, counts: tuple[int, int, int]
) -> None:
    result = import_cli([str(real(name)), "--format", fmt, "--out", str(tmp_path / "ev"), "--json"])
    assert result.exit_code == 0, result.output
    [line] = result.output.strip().splitlines()
    summary = json.loads(line)
    assert (summary["read"], summary["written"], summary["quarantined"]) == counts
    assert summary["reconciles"] is True
    assert len(read_events(tmp_path / "ev")) == counts[1]


def test_cli_csv_with_map_options(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "shop.csv", "uid,ts,action", "7,2024-03-01,seen", "8,2024-03-01,gone")
    args = [str(source), "--format", "csv", "--out", str(tmp_path / "ev"), "--json"]
    args += [
        "--map",
        "user_id=uid",
        "--map",
        "event_time=ts",
        "--map",
        "event_type=action",
        "--event-map",
        "seen=view",
    ]
    result = import_cli(args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["written"], summary["quarantined"]) == (1, 1)
    assert summary["quarantine_reasons"] == {"unknown_event_type": 1}


def test_cli_writes_to_the_workspace_events_dir_by_default(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "UserBehavior.csv", "1,2268318,2520377,pv,1511544070")
    home = tmp_path / "home"
    result = import_cli([str(source), "-f", "taobao"], env={"SHOPSCORE_HOME": str(home)})
    assert result.exit_code == 0, result.output
    assert f"into {home / 'events'}" in result.output
    assert len(read_events(home / "events")) == 1


def test_cli_errors_name_the_problem(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "shop.csv", "uid,ts,action", "7,2024-03-01,seen")
    bad_map = import_cli([str(source), "-f", "csv", "--out", str(tmp_path), "--map", "uid"])
    assert bad_map.exit_code == 2 and "expected COL=SRC, got 'uid'" in bad_map.output
    wrong = import_cli([str(source), "-f", "rees46", "--out", str(tmp_path)])
    assert wrong.exit_code == 1 and "rees46 file has header ['uid', 'ts', 'action']" in wrong.output
    assert wrong.output.count("\n") == 1 and wrong.output.startswith("Error: ")


def test_bench_generator_writes_a_rees46_file_with_known_bad_rows(tmp_path: Path) -> None:
    # The bench itself (10M rows, child process) is run by hand; here its generator must produce a file the
    # importer reads with exactly the quarantine count the bench expects.
    source = tmp_path / "synthetic.csv"
    expected_bad = generate_rees46_file(source, 20_001, chunk=7_000, bad_every=5_000)
    summary = import_events(source, "rees46", tmp_path / "events", chunk_rows=6_000)
    assert (summary.read, summary.quarantined, expected_bad) == (20_001, 5, 5)
    assert summary.quarantine_reasons == {"negative_price": 4, "field_count": 1}
    assert_reconciles(summary, tmp_path / "events")
