"""Import raw shop events (REES46, RetailRocket, Taobao, DIGINETICA, CDNOW, any mapped CSV/parquet) into the
canonical event table (`registry.events.schema`).

    summary = import_events("2019-Oct.csv", "rees46", settings.events_dir)
    assert summary.read == summary.written + summary.quarantined + summary.duplicates_skipped

How an import works
- The file is streamed in chunks of `chunk_rows` physical lines (parquet: record batches); memory does not
  grow with the file. Field counts are checked on the raw bytes with numpy; the clean lines of a chunk are
  split by pyarrow's CSV reader into arrow-backed string columns and validated vectorised with pandas. Only
  lines that need it (quotes, stray carriage returns or NULs) go through the per-line `csv` module path.
  One record is one physical line: a quoted field holding a line break is quarantined, not joined.
- Every data line is counted in `read` and ends up in exactly one place: written, quarantined, or (only with
  `drop_duplicates=True`) skipped as an exact repeat of an event already taken from the same file.
- A bad line (wrong number of fields, bad bytes, unparseable or impossible timestamp, unknown event type,
  negative or non-numeric price, missing or unparseable user id, ...) goes to
  `<out>/_quarantine/<file name>.<source key>.jsonl`, one JSON object per line:
  `{"line": <physical line number, header = 1>, "code": ..., "reason": ..., "raw": <the line>}`.
- Parts are named `<format>-<source key>-<import key>-<chunk>.parquet` inside `date=YYYY-MM-DD/`: the source
  key hashes the file's resolved path, the import key hashes its content and the import options. Parts are
  written to `<out>/_staging/` first and moved into place only when the whole file has been read; then every
  older part of the same source is removed. Importing the same file again therefore replaces its events
  instead of duplicating them, an edited file replaces its old version, and a failed import changes nothing.
  (A copy of a file at another path is another source: its events are added again.)

Mapping choices per format (documented here because they are judgement calls):
- rees46: `category` = `category_id` (always present; `category_code` is empty on about a third of rows),
  `session_id` = `user_session`, `item_id` = `product_id`.
- retailrocket: timestamp is epoch milliseconds; view/addtocart/transaction -> view/cart/purchase;
  `transactionid` has no canonical column and is dropped.
- taobao: no header; pv/cart/fav/buy -> view/cart/favorite/purchase; unix seconds; `category` = category id.
- diginetica: views, purchases or queries file, recognised by its `;`-separated header. The data gives each
  event's calendar date (`eventdate`) and `timeframe`, milliseconds since the session's first event, but no
  clock time. event_time = S + timeframe, where S is the earliest session start consistent with the date of
  every event of that session in the file (a light pre-pass collects it, memory ~ sessions), so dates are
  exact and events keep their order within a session; the time of day is a lower bound, not an observation.
  `NA` user ids (anonymous sessions) are quarantined as missing user ids: canonical events need a user and
  we do not invent one.
- cdnow: every row is a purchase; `quantity` = number_of_cds and `price` = dollar_value / number_of_cds (the
  unit price, like the other sources; the order total is price * quantity); event_time = the date, 00:00 UTC.
- csv: `mapping` = {canonical column: source column}; `event_map` = {source value: canonical type}
  (canonical values map to themselves). event_time may be ISO 8601 text (naive = UTC, a trailing " UTC" is
  accepted), epoch digits (s/ms/us/ns, told apart by magnitude) or a parquet timestamp.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from registry.errors import UserError
from registry.events.schema import COLUMNS, EVENT_TYPES, write_event_parts

FORMATS: tuple[str, ...] = ("rees46", "retailrocket", "taobao", "diginetica", "cdnow", "csv")

# Timestamps outside [EARLIEST, now + FUTURE_SLACK] are impossible for a shop event log.
EARLIEST = pd.Timestamp("1990-01-01", tz="UTC")
FUTURE_SLACK = pd.Timedelta(days=1)

# Values that mean "no value" in numeric and id columns (text columns treat only "" as null).
MISSING_TOKENS = frozenset({"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"})

# Bump when a change to the parsing rules changes what an import of the same bytes writes.
_IMPORTER_VERSION = "1"


class ImportFormatError(UserError, ValueError):
    """The file or the options cannot be imported at all (wrong header, bad mapping); nothing was written."""


# --------------------------------------------------------------------------------------------- summary


@dataclass
class ImportSummary:
    """What one import did. Invariant: read == written + quarantined + duplicates_skipped."""

    source: Path
    format: str
    events_dir: Path
    read: int = 0
    written: int = 0
    quarantined: int = 0
    duplicates_skipped: int = 0
    by_event_type: dict[str, int] = field(default_factory=dict)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    quarantine_path: Path | None = None
    content_sha256: str = ""
    parts: int = 0
    seconds: float = 0.0

    @property
    def reconciles(self) -> bool:
        return self.read == self.written + self.quarantined + self.duplicates_skipped

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "format": self.format,
            "events_dir": str(self.events_dir),
            "read": self.read,
            "written": self.written,
            "quarantined": self.quarantined,
            "duplicates_skipped": self.duplicates_skipped,
            "by_event_type": dict(sorted(self.by_event_type.items())),
            "quarantine_reasons": dict(sorted(self.quarantine_reasons.items())),
            "quarantine_path": str(self.quarantine_path) if self.quarantine_path else None,
            "content_sha256": self.content_sha256,
            "parts": self.parts,
            "seconds": round(self.seconds, 3),
            "reconciles": self.reconciles,
        }

    def to_json(self) -> str:
        """One line of JSON (the CLI's `--json` prints exactly this as its last line)."""
        return json.dumps(self.to_dict(), sort_keys=False)

    def describe(self) -> str:
        """A short human summary."""
        types = ", ".join(f"{t} {n:,}" for t, n in sorted(self.by_event_type.items())) or "none"
        lines = [
            f"imported {self.source.name} as {self.format} into {self.events_dir} in {self.seconds:.1f}s",
            f"  read {self.read:,} = written {self.written:,} + quarantined {self.quarantined:,}"
            f" + duplicates skipped {self.duplicates_skipped:,}",
            f"  written by type: {types}",
        ]
        if self.quarantined:
            reasons = ", ".join(f"{code} {n:,}" for code, n in sorted(self.quarantine_reasons.items()))
            lines.append(f"  quarantined ({reasons}): see {self.quarantine_path}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------- chunks


@dataclass
class _Reject:
    position: int
    code: str
    reason: str


@dataclass
class _Chunk:
    """One chunk of source rows. Row `p` (0-based within the chunk) is physical line `line_numbers[p]`.

    `fields` holds the rows that split into the expected columns (index = position); `rejects` the rows
    that did not. `raw` holds the undecoded bytes of every line, or None for parquet (rows are rendered
    from `fields` when quarantined).
    """

    line_numbers: np.ndarray
    raw: list[bytes] | None
    fields: pd.DataFrame
    rejects: list[_Reject]

    def raw_text(self, position: int) -> str:
        if self.raw is not None:
            return _line_text(self.raw[position])
        row = self.fields.loc[position]
        return json.dumps({k: None if _is_missing(v) else str(v) for k, v in row.items()})


def _is_missing(value: object) -> bool:
    return (
        value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value))
    )


def _line_text(raw: bytes) -> str:
    """A line without its ending; bad bytes shown as \\xNN escapes."""
    return raw.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8", errors="backslashreplace")


def _undecodable(body: bytes, raw_lines: list[bytes]) -> list[_Reject]:
    """Rejects for lines that are not UTF-8 (checked per line only when the chunk as a whole fails)."""
    try:
        body.decode("utf-8")
        return []
    except UnicodeDecodeError:
        pass
    rejects: list[_Reject] = []
    for position, raw in enumerate(raw_lines):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            rejects.append(
                _Reject(
                    position,
                    "undecodable",
                    f"undecodable bytes {raw[exc.start : exc.end]!r} at byte {exc.start}: the line is not "
                    "UTF-8; re-encode the file as UTF-8 (e.g. iconv -t UTF-8)",
                )
            )
    return rejects


def _needs_csv_module(raw: bytes) -> bool:
    """Quotes need the csv module; a stray carriage return or NUL would split or corrupt a line in a fast
    parser. A trailing CRLF is an ordinary line ending."""
    line = raw.removesuffix(b"\n").removesuffix(b"\r")
    return b'"' in line or b"\r" in line or b"\x00" in line


def _split_fields(
    raw_lines: list[bytes], body: bytes, skip: set[int], sep: str | None, names: list[str]
) -> tuple[pd.DataFrame, list[_Reject]]:
    """Split lines into `names` columns (all str). Positions in `skip` were already rejected."""
    if sep is None:
        return _split_whitespace(raw_lines, skip, names)
    expected = len(names)
    fields_per_line = _separator_counts(body, sep, len(raw_lines)) + 1
    usable = np.ones(len(raw_lines), dtype=bool)
    usable[list(skip)] = False
    special = b'"' in body or b"\x00" in body or body.count(b"\r") != body.count(b"\r\n")
    quoted = (
        [p for p in np.flatnonzero(usable).tolist() if _needs_csv_module(raw_lines[p])] if special else []
    )
    usable[quoted] = False
    simple_mask = usable & (fields_per_line == expected)
    rejects = [
        _field_count_reject(p, raw_lines[p], int(fields_per_line[p]), expected)
        for p in np.flatnonzero(usable & ~simple_mask).tolist()
    ]
    simple = np.flatnonzero(simple_mask).tolist()
    whole = len(simple) == len(raw_lines)
    frame = _read_simple(body if whole else b"".join(raw_lines[p] for p in simple), simple, sep, names)
    if quoted:
        extra, more_rejects = _read_quoted(raw_lines, quoted, sep, names)
        rejects.extend(more_rejects)
        non_empty = [part for part in (frame, extra.astype(_ARROW_TEXT)) if len(part)]
        if non_empty:
            frame = pd.concat(non_empty).sort_index()
    return frame, rejects


def _separator_counts(body: bytes, sep: str, lines: int) -> np.ndarray:
    """How many `sep` bytes each line of `body` holds (vectorised over the whole chunk)."""
    data = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(data == ord("\n")) + 1
    if len(ends) < lines:  # the file's last line has no newline
        ends = np.append(ends, len(data))
    seps_before_end = np.searchsorted(np.flatnonzero(data == ord(sep)), ends)
    counts = np.diff(seps_before_end, prepend=0)
    if len(counts) != lines:
        raise RuntimeError(f"internal error: found {len(counts)} line ends for {lines} lines")
    return counts


def _field_count_reject(position: int, raw: bytes, found: int, expected: int) -> _Reject:
    if not raw.strip():
        return _Reject(position, "empty_line", "empty line; every data line must hold one event")
    return _Reject(
        position,
        "field_count",
        f"expected {expected} fields, found {found}; the line is truncated or has an unquoted separator",
    )


_ARROW_TEXT = pd.StringDtype("pyarrow")


def _read_simple(data: bytes, positions: list[int], sep: str, names: list[str]) -> pd.DataFrame:
    """Vectorised parse (pyarrow's CSV reader) of UTF-8 lines known to have exactly len(names) fields and
    no quotes; every value stays text, "" included."""
    if not positions:
        return pd.DataFrame({name: pd.Series(dtype=_ARROW_TEXT) for name in names})
    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=names),
        parse_options=pacsv.ParseOptions(delimiter=sep, quote_char=False, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in names}, strings_can_be_null=False
        ),
    )
    if table.num_rows != len(positions):  # never lose rows silently
        raise RuntimeError(f"internal error: parsed {table.num_rows} rows from {len(positions)} lines")
    frame = table.to_pandas(types_mapper={pa.string(): _ARROW_TEXT}.get)
    frame.index = pd.Index(positions)
    return frame


def _read_quoted(
    raw_lines: list[bytes], positions: list[int], sep: str, names: list[str]
) -> tuple[pd.DataFrame, list[_Reject]]:
    """Per-line csv-module parse for lines with quotes or control characters."""
    rows: list[list[str]] = []
    kept: list[int] = []
    rejects: list[_Reject] = []
    for position in positions:
        raw = raw_lines[position]
        if b"\x00" in raw:  # text never holds NUL: the file is corrupt or binary here
            reason = "malformed CSV line (line contains NUL); the file is corrupt or not text at this line"
            rejects.append(_Reject(position, "malformed_line", reason))
            continue
        try:
            fields = next(csv.reader([_line_text(raw)], delimiter=sep, strict=True))
        except csv.Error as exc:
            reason = f"malformed CSV line ({exc}); check quotes and line breaks"
            rejects.append(_Reject(position, "malformed_line", reason))
            continue
        if len(fields) != len(names):
            rejects.append(_field_count_reject(position, raw, len(fields), len(names)))
            continue
        rows.append(fields)
        kept.append(position)
    return pd.DataFrame(rows, columns=names, index=pd.Index(kept), dtype=object), rejects


def _split_whitespace(
    raw_lines: list[bytes], skip: set[int], names: list[str]
) -> tuple[pd.DataFrame, list[_Reject]]:
    rows: list[list[str]] = []
    kept: list[int] = []
    rejects: list[_Reject] = []
    for position, raw in enumerate(raw_lines):
        if position in skip:
            continue
        fields = raw.decode("utf-8").split()
        if len(fields) == len(names):
            rows.append(fields)
            kept.append(position)
        else:
            rejects.append(_field_count_reject(position, raw, len(fields), len(names)))
    return pd.DataFrame(rows, columns=names, index=pd.Index(kept), dtype=object), rejects


# --------------------------------------------------------------------------------------------- verdicts


class _Verdicts:
    """Per row: the first failing check's code and every failure's message (None while the row is good)."""

    def __init__(self, index: pd.Index) -> None:
        self.codes = pd.Series(None, index=index, dtype=object)
        self.reasons = pd.Series(None, index=index, dtype=object)

    def flag(self, mask: pd.Series, code: str, values: pd.Series, describe: Callable[[Any], str]) -> None:
        mask = pd.Series(mask, index=self.codes.index).fillna(False).astype(bool)
        if not mask.any():
            return
        messages = [describe(v) for v in values[mask]]
        fresh = mask & self.codes.isna()
        self.codes[fresh] = code
        previous = self.reasons[mask]
        self.reasons[mask] = [
            m if pd.isna(p) else f"{p}; {m}" for p, m in zip(previous, messages, strict=True)
        ]

    @property
    def good(self) -> pd.Series:
        return self.codes.isna()


@dataclass(frozen=True)
class _Context:
    earliest: pd.Timestamp
    latest: pd.Timestamp
    # diginetica: session id -> start bound over the whole file (see _diginetica_session_starts)
    session_starts: pd.Series | None = None


# --------------------------------------------------------------------------------------------- field parsers


def _is_text(values: pd.Series) -> bool:
    """Text columns come as object (csv module, whitespace split) or arrow-backed strings (fast path)."""
    return values.dtype == object or isinstance(values.dtype, pd.StringDtype)


def _is_arrow_text(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow"


def _as_python_text(values: pd.Series) -> pd.Series:
    """Object Series of str ("" for nulls), for the slow regex paths."""
    return pd.Series(values.to_numpy(dtype=object, na_value=""), index=values.index).astype(str)


def _missing_mask(values: pd.Series) -> pd.Series:
    if _is_text(values):
        return (values.isna() | values.isin(MISSING_TOKENS)).astype(bool)
    return values.isna()


def _to_int64(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(Int64 values, mask of present values that are not integers). Missing tokens become <NA>."""
    missing = _missing_mask(values)
    if values.dtype.kind in "iu":
        return values.astype("Int64"), pd.Series(False, index=values.index)
    if values.dtype.kind == "f":
        bad = ~missing & (~np.isfinite(values.fillna(0)) | (values.fillna(0) % 1 != 0))
        return values.where(~bad & ~missing).astype("Int64"), bad
    if _is_arrow_text(values) and not missing.any():
        try:  # fast path: arrow's cast accepts plain integers only and fails on anything else
            return values.astype("int64").astype("Int64"), pd.Series(False, index=values.index)
        except (ValueError, OverflowError, TypeError):
            pass
    text = _as_python_text(values).str.strip().str.replace(r"\.0*$", "", regex=True)
    good = ~missing & text.str.fullmatch(r"[+-]?[0-9]{1,19}") & text.map(_fits_int64)
    out = pd.Series(pd.NA, index=values.index, dtype="Int64")
    out[good] = text[good].astype("int64")
    return out, ~missing & ~good


_INT64_MAX_TEXT = str(2**63 - 1)


def _fits_int64(text: str) -> bool:
    digits = text.lstrip("+-")
    return len(digits) < 19 or (len(digits) == 19 and digits <= _INT64_MAX_TEXT)


def _parse_user_id(values: pd.Series, v: _Verdicts, column: str) -> pd.Series:
    ids, bad = _to_int64(values)
    missing = _missing_mask(values)
    v.flag(
        missing,
        "missing_user_id",
        values,
        lambda x: f"missing user id in {column} ({x!r}); every event needs a user",
    )
    v.flag(
        bad,
        "bad_user_id",
        values,
        lambda x: f"unparseable user id {x!r} in {column}; expected an integer (canonical user_id is int64)",
    )
    return ids


def _parse_optional_int(values: pd.Series, v: _Verdicts, column: str, code: str) -> pd.Series:
    ids, bad = _to_int64(values)
    v.flag(bad, code, values, lambda x: f"unparseable {column} {x!r}; expected an integer")
    return ids


def _parse_quantity(values: pd.Series, v: _Verdicts, column: str) -> pd.Series:
    quantity = _parse_optional_int(values, v, column, "bad_quantity")
    v.flag(
        quantity.fillna(1) < 1,
        "bad_quantity",
        values,
        lambda x: f"{column} {x!r} is not a positive count; a quantity must be >= 1",
    )
    return quantity


def _to_float(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(float values, mask of present values that are not finite numbers)."""
    missing = _missing_mask(values)
    numbers: pd.Series | None = None
    if not _is_text(values):
        numbers = values.astype("float64")
    elif _is_arrow_text(values):
        try:  # fast path: arrow's cast fails unless every value is a number
            numbers = values.astype("float64")
        except (ValueError, TypeError):
            pass
    if numbers is None:
        numbers = pd.to_numeric(_as_python_text(values), errors="coerce").astype("float64")
    bad = ~missing & ~np.isfinite(numbers.fillna(np.inf))
    return numbers.where(~missing & ~bad), bad


def _parse_price(values: pd.Series, v: _Verdicts, column: str) -> pd.Series:
    price, bad = _to_float(values)
    v.flag(bad, "bad_price", values, lambda x: f"non-numeric price {x!r} in {column}; expected a number >= 0")
    v.flag(
        price < 0,
        "negative_price",
        values,
        lambda x: f"negative price {x!r} in {column}; prices must be >= 0",
    )
    return price


def _text(values: pd.Series) -> pd.Series:
    """Optional text: "" and nulls become <NA>; other values are kept as given (arrow-backed strings stay
    arrow-backed, which spares a copy on the way to parquet)."""
    if isinstance(values.dtype, pd.StringDtype):
        return values.mask((values == "").fillna(False).astype(bool))
    if values.dtype != object:
        values = values.astype(object).where(values.notna(), None).map(lambda x: x if x is None else str(x))
    return values.where(values.notna() & (values != ""), None).astype("string")


def _map_event_type(values: pd.Series, mapping: Mapping[str, str], v: _Verdicts, column: str) -> pd.Series:
    mapped = values.map(mapping)
    unmapped = mapped.isna() & values.notna()
    if unmapped.any():  # tolerate surrounding spaces, only where needed (strip is slow)
        mapped[unmapped] = values[unmapped].astype(str).str.strip().map(mapping)
    expected = sorted(mapping)
    v.flag(
        mapped.isna(),
        "unknown_event_type",
        values,
        lambda x: f"unknown event type {x!r} in {column}; expected one of {expected}",
    )
    return mapped.astype("string")


def _check_time(
    times: pd.Series, raw: pd.Series, v: _Verdicts, ctx: _Context, column: str, expected: str
) -> pd.Series:
    """Flag unparseable (NaT) and impossible (too old, too far in the future) timestamps."""
    v.flag(
        times.isna(),
        "bad_timestamp",
        raw,
        lambda x: f"unparseable timestamp {x!r} in {column}; expected {expected}",
    )
    v.flag(
        times < ctx.earliest,
        "impossible_timestamp",
        raw,
        lambda x: f"impossible timestamp {x!r} in {column}: before {ctx.earliest:%Y-%m-%d}",
    )
    v.flag(
        times > ctx.latest,
        "impossible_timestamp",
        raw,
        lambda x: (
            f"impossible timestamp {x!r} in {column}: more than 1 day in the future"
            f" (after {ctx.latest:%Y-%m-%d %H:%M} UTC)"
        ),
    )
    return times


def _parse_time_text(values: pd.Series, fmt: str, v: _Verdicts, ctx: _Context, column: str) -> pd.Series:
    text = values.astype(object).astype(str).str.strip()
    times = pd.to_datetime(text, format=fmt, utc=True, errors="coerce")
    return _check_time(times, values, v, ctx, column, f"format {fmt!r}")


def _parse_time_rees46(values: pd.Series, v: _Verdicts, ctx: _Context, column: str) -> pd.Series:
    # "2019-10-01 00:00:00 UTC": drop the suffix so pandas takes its fast ISO path.
    text = values.str.removesuffix(" UTC")
    times = pd.to_datetime(text, format="%Y-%m-%d %H:%M:%S", utc=True, errors="coerce")
    return _check_time(times, values, v, ctx, column, "'YYYY-MM-DD HH:MM:SS UTC'")


_EPOCH_UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _epoch_to_times(numbers: pd.Series, unit: str | pd.Series) -> pd.Series:
    """Int64 epoch numbers (with <NA>) -> UTC timestamps (NaT where missing).

    Numbers beyond what datetime64[ns] holds become the largest or smallest timestamp, so the range check
    reports them as impossible (future / too old) rather than unparseable.
    """
    factor = (
        unit.map(_EPOCH_UNITS)
        if isinstance(unit, pd.Series)
        else pd.Series(_EPOCH_UNITS[unit], numbers.index)
    )
    limit = np.int64(2**62) // factor
    in_range = (numbers.abs() < limit).fillna(False).astype(bool)
    nanos = (numbers.where(in_range, 0).fillna(0).astype("int64") * factor).astype("int64")
    times = pd.Series(pd.to_datetime(nanos, unit="ns", utc=True), index=numbers.index)
    times[~in_range & (numbers > 0).fillna(False)] = pd.Timestamp.max.tz_localize("UTC")
    times[~in_range & (numbers < 0).fillna(False)] = pd.Timestamp.min.tz_localize("UTC")
    return times.where(numbers.notna())


def _parse_time_epoch(values: pd.Series, unit: str, v: _Verdicts, ctx: _Context, column: str) -> pd.Series:
    numbers, bad = _to_int64(values)
    times = _epoch_to_times(numbers.where(~bad), unit)
    return _check_time(times, values, v, ctx, column, f"epoch {unit} (an integer)")


def _epoch_unit_by_magnitude(numbers: pd.Series) -> pd.Series:
    """Seconds, ms, us or ns told apart by size; unambiguous for dates from 1973 to 5138."""
    size = numbers.abs().fillna(0)
    return pd.Series(
        np.select([size < 10**11, size < 10**14, size < 10**17], ["s", "ms", "us"], "ns"), index=numbers.index
    )


def _parse_time_auto(values: pd.Series, v: _Verdicts, ctx: _Context, column: str) -> pd.Series:
    """Generic event_time: a timestamp column, epoch numbers, or ISO 8601 text (naive means UTC)."""
    expected = "ISO 8601 text (e.g. '2019-10-01 00:00:00'), epoch s/ms/us/ns, or a timestamp column"
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        times = values.dt.tz_convert("UTC")
    elif values.dtype.kind == "M":
        times = values.dt.tz_localize("UTC")
    else:
        numbers, not_int = _to_int64(values)
        is_epoch = numbers.notna() & ~not_int
        times = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
        if is_epoch.any():
            epoch = numbers.where(is_epoch)
            times[is_epoch] = _epoch_to_times(epoch, _epoch_unit_by_magnitude(epoch))[is_epoch]
        text = ~is_epoch & values.notna()
        if text.any():
            cleaned = values[text].astype(str).str.strip().str.removesuffix(" UTC")
            times[text] = pd.to_datetime(cleaned, format="ISO8601", utc=True, errors="coerce")
    return _check_time(times.astype("datetime64[ns, UTC]"), values, v, ctx, column, expected)


def _frame(index: pd.Index, **columns: pd.Series) -> pd.DataFrame:
    return pd.DataFrame(columns, index=index)


# --------------------------------------------------------------------------------------------- formats

Converter = Callable[[pd.DataFrame, _Verdicts, _Context], pd.DataFrame]

REES46_COLUMNS = (
    "event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price", "user_id",
    "user_session",
)  # fmt: skip
REES46_EVENTS = {
    "view": "view",
    "cart": "cart",
    "remove_from_cart": "remove_from_cart",
    "purchase": "purchase",
}
RETAILROCKET_COLUMNS = ("timestamp", "visitorid", "event", "itemid", "transactionid")
RETAILROCKET_EVENTS = {"view": "view", "addtocart": "cart", "transaction": "purchase"}
TAOBAO_COLUMNS = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")
TAOBAO_EVENTS = {"pv": "view", "cart": "cart", "fav": "favorite", "buy": "purchase"}
CDNOW_COLUMNS = ("customer_id", "date", "number_of_cds", "dollar_value")
# DIGINETICA headers, normalised (lower case, "_" removed); the sample files use snake_case.
DIGINETICA_KINDS: dict[str, tuple[str, ...]] = {
    "views": ("sessionid", "userid", "itemid", "timeframe", "eventdate"),
    "purchases": ("sessionid", "userid", "timeframe", "eventdate", "ordernumber", "itemid"),
    "queries": (
        "queryid", "sessionid", "userid", "timeframe", "duration", "eventdate", "searchstring.tokens",
        "categoryid", "items", "is.test",
    ),
}  # fmt: skip


def _convert_rees46(f: pd.DataFrame, v: _Verdicts, ctx: _Context) -> pd.DataFrame:
    return _frame(
        f.index,
        event_time=_parse_time_rees46(f["event_time"], v, ctx, "event_time"),
        user_id=_parse_user_id(f["user_id"], v, "user_id"),
        event_type=_map_event_type(f["event_type"], REES46_EVENTS, v, "event_type"),
        item_id=_parse_optional_int(f["product_id"], v, "product_id", "bad_item_id"),
        category=_text(f["category_id"]),
        brand=_text(f["brand"]),
        price=_parse_price(f["price"], v, "price"),
        session_id=_text(f["user_session"]),
    )


def _convert_retailrocket(f: pd.DataFrame, v: _Verdicts, ctx: _Context) -> pd.DataFrame:
    return _frame(
        f.index,
        event_time=_parse_time_epoch(f["timestamp"], "ms", v, ctx, "timestamp"),
        user_id=_parse_user_id(f["visitorid"], v, "visitorid"),
        event_type=_map_event_type(f["event"], RETAILROCKET_EVENTS, v, "event"),
        item_id=_parse_optional_int(f["itemid"], v, "itemid", "bad_item_id"),
    )


def _convert_taobao(f: pd.DataFrame, v: _Verdicts, ctx: _Context) -> pd.DataFrame:
    return _frame(
        f.index,
        event_time=_parse_time_epoch(f["timestamp"], "s", v, ctx, "timestamp"),
        user_id=_parse_user_id(f["user_id"], v, "user_id"),
        event_type=_map_event_type(f["behavior_type"], TAOBAO_EVENTS, v, "behavior_type"),
        item_id=_parse_optional_int(f["item_id"], v, "item_id", "bad_item_id"),
        category=_text(f["category_id"]),
    )


def _convert_cdnow(f: pd.DataFrame, v: _Verdicts, ctx: _Context) -> pd.DataFrame:
    quantity = _parse_quantity(f["number_of_cds"], v, "number_of_cds")
    total = _parse_price(f["dollar_value"], v, "dollar_value")
    return _frame(
        f.index,
        event_time=_parse_time_text(f["date"], "%Y%m%d", v, ctx, "date"),
        user_id=_parse_user_id(f["customer_id"], v, "customer_id"),
        event_type=pd.Series("purchase", index=f.index, dtype="string"),
        price=total / quantity.to_numpy(dtype="float64", na_value=np.nan),
        quantity=quantity,
    )


def _diginetica_clock(f: pd.DataFrame) -> pd.DataFrame:
    """Per row: `day` (eventdate), `offset` (timeframe as a Timedelta, NaT unless an integer >= 0), `session`
    (None when empty) and `bound` = day - offset, a lower bound of the session's start."""
    day = pd.to_datetime(f["eventdate"].str.strip(), format="%Y-%m-%d", utc=True, errors="coerce")
    millis, _ = _to_int64(f["timeframe"])
    millis = millis.where(millis >= 0)
    offset = pd.Series(
        pd.to_timedelta(millis.to_numpy(dtype="float64", na_value=np.nan), unit="ms"), index=f.index
    )
    session = f["sessionid"].str.strip()
    return pd.DataFrame(
        {"day": day, "offset": offset, "session": session.where(session != ""), "bound": day - offset},
        index=f.index,
    )


def _diginetica_times(f: pd.DataFrame, v: _Verdicts, ctx: _Context) -> pd.Series:
    """event_time = S + timeframe, S = the earliest session start consistent with every event's date."""
    clock = _diginetica_clock(f)
    v.flag(
        clock["offset"].isna(),
        "bad_timestamp",
        f["timeframe"],
        lambda x: (
            f"unparseable timeframe {x!r}; expected milliseconds since the session start (integer >= 0)"
        ),
    )
    if ctx.session_starts is not None:
        start = clock["session"].map(ctx.session_starts)
    else:
        start = clock["bound"].groupby(clock["session"], dropna=True).transform("max").reindex(f.index)
    times = start.fillna(clock["bound"]) + clock["offset"]
    v.flag(
        clock["day"].notna() & times.notna() & (times.dt.floor("D") != clock["day"]),
        "inconsistent_timestamp",
        f["eventdate"] + " +" + f["timeframe"] + "ms in session " + f["sessionid"],
        lambda x: f"eventdate/timeframe {x} disagree with the session's other events",
    )
    return _check_time(times, f["eventdate"], v, ctx, "eventdate", "'YYYY-MM-DD' and an integer timeframe")


def _diginetica_session_starts(path: Path, chunk_rows: int) -> pd.Series:
    """Pre-pass over a DIGINETICA file: session -> max(eventdate - timeframe) over the whole file, so event
    times do not depend on where chunks split a session. Memory grows with sessions, not rows."""
    has_header, sep, resolve = _spec_resolver("diginetica", None, {}, ";")
    per_chunk: list[pd.Series] = []
    for chunk in _TextSource(path, has_header, sep, resolve).chunks(chunk_rows):
        clock = _diginetica_clock(chunk.fields)
        per_chunk.append(clock["bound"].groupby(clock["session"], dropna=True).max().dropna())
        per_chunk = [pd.concat(per_chunk).groupby(level=0).max()]  # keep one series: memory ~ sessions
    return per_chunk[0] if per_chunk else pd.Series(dtype="datetime64[ns, UTC]")


def _convert_diginetica(kind: str) -> Converter:
    event_type = {"views": "view", "purchases": "purchase", "queries": "search"}[kind]

    def convert(f: pd.DataFrame, v: _Verdicts, ctx: _Context) -> pd.DataFrame:
        columns: dict[str, pd.Series] = {
            "event_time": _diginetica_times(f, v, ctx),
            "user_id": _parse_user_id(f["userid"], v, "userId"),
            "event_type": pd.Series(event_type, index=f.index, dtype="string"),
            "session_id": _text(f["sessionid"]),
        }
        if "itemid" in f:
            columns["item_id"] = _parse_optional_int(f["itemid"], v, "itemId", "bad_item_id")
        if kind == "queries":
            columns["query"] = _text(f["searchstring.tokens"])
            columns["category"] = _text(f["categoryid"])
        return _frame(f.index, **columns)

    return convert


def _convert_mapped(mapping: Mapping[str, str], event_map: Mapping[str, str]) -> Converter:
    """Generic converter: `mapping` is canonical column -> source column."""

    def convert(f: pd.DataFrame, v: _Verdicts, ctx: _Context) -> pd.DataFrame:
        columns: dict[str, pd.Series] = {
            "event_time": _parse_time_auto(f[mapping["event_time"]], v, ctx, mapping["event_time"]),
            "user_id": _parse_user_id(f[mapping["user_id"]], v, mapping["user_id"]),
            "event_type": _map_event_type(f[mapping["event_type"]], event_map, v, mapping["event_type"]),
        }
        for name in ("item_id", "category", "brand", "price", "quantity", "session_id", "query"):
            if name in mapping:
                columns[name] = _convert_optional(name, f[mapping[name]], v, mapping[name])
        return _frame(f.index, **columns)

    return convert


def _convert_optional(name: str, values: pd.Series, v: _Verdicts, source: str) -> pd.Series:
    if name == "item_id":
        return _parse_optional_int(values, v, source, "bad_item_id")
    if name == "price":
        return _parse_price(values, v, source)
    if name == "quantity":
        return _parse_quantity(values, v, source)
    return _text(values)


# --------------------------------------------------------------------------------------------- sources


@dataclass
class _Spec:
    """How to read one format: separator (None: runs of whitespace), the names given to the fields, and
    the converter to canonical columns."""

    sep: str | None
    names: list[str]
    convert: Converter


def _fixed_header(
    fmt: str, sep: str | None, expected: tuple[str, ...], convert: Converter
) -> Callable[..., _Spec]:
    def resolve(header: list[str] | None) -> _Spec:
        assert header is not None
        if [h.strip() for h in header] != list(expected):
            raise ImportFormatError(
                f"{fmt} file has header {header}, expected {list(expected)}; "
                f"check --format, or import it with --format csv and --map"
            )
        return _Spec(sep, list(expected), convert)

    return resolve


def _diginetica_spec(header: list[str] | None) -> _Spec:
    assert header is not None
    names = [h.strip().lower().replace("_", "") for h in header]
    for kind, expected in DIGINETICA_KINDS.items():
        if names == list(expected):
            return _Spec(";", names, _convert_diginetica(kind))
    raise ImportFormatError(
        f"diginetica file has header {header}; expected the ';'-separated header of the views "
        f"({';'.join(DIGINETICA_KINDS['views'])}), purchases or queries file"
    )


def _mapped_spec(mapping: Mapping[str, str], event_map: Mapping[str, str], sep: str) -> Callable[..., _Spec]:
    def resolve(header: list[str] | None) -> _Spec:
        assert header is not None
        names = [h.strip() for h in header]
        _check_mapping_sources(mapping, names)
        return _Spec(sep, names, _convert_mapped(mapping, event_map))

    return resolve


def _check_mapping_sources(mapping: Mapping[str, str], available: list[str]) -> None:
    missing = {canon: src for canon, src in mapping.items() if src not in available}
    if missing:
        raise ImportFormatError(
            f"mapping names source column(s) {missing} that the file does not have; its columns are "
            f"{available}; fix --map CANONICAL=SOURCE"
        )


def _spec_resolver(
    fmt: str, mapping: Mapping[str, str] | None, event_map: Mapping[str, str], sep: str
) -> tuple[bool, str | None, Callable[[list[str] | None], _Spec]]:
    """(has header, separator, header -> _Spec) for a text format."""
    if fmt == "rees46":
        return True, ",", _fixed_header(fmt, ",", REES46_COLUMNS, _convert_rees46)
    if fmt == "retailrocket":
        return True, ",", _fixed_header(fmt, ",", RETAILROCKET_COLUMNS, _convert_retailrocket)
    if fmt == "cdnow":
        return True, None, _fixed_header(fmt, None, CDNOW_COLUMNS, _convert_cdnow)
    if fmt == "taobao":
        return False, ",", lambda _header: _Spec(",", list(TAOBAO_COLUMNS), _convert_taobao)
    if fmt == "diginetica":
        return True, ";", _diginetica_spec
    assert mapping is not None
    return True, sep, _mapped_spec(mapping, event_map, sep)


_BOM = b"\xef\xbb\xbf"


class _TextSource:
    """Streams a text file as chunks of at most `chunk_rows` lines; hashes the bytes as it goes."""

    def __init__(self, path: Path, has_header: bool, sep: str | None, resolve: Callable[..., _Spec]) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self._handle = path.open("rb")
        self._first_line = 1
        try:
            self.spec = resolve(self._read_header(sep) if has_header else None)
        except BaseException:
            self._handle.close()
            raise

    def _read_header(self, sep: str | None) -> list[str]:
        raw = self._handle.readline()
        self.digest.update(raw)
        if not raw:
            raise ImportFormatError(f"{self.path} is empty; expected a header line")
        self._first_line = 2
        return self._parse_header(raw, sep)

    def _parse_header(self, raw: bytes, sep: str | None) -> list[str]:
        try:
            text = raw.decode("utf-8-sig").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise ImportFormatError(
                f"{self.path}: header line is not UTF-8 ({exc}); re-encode the file"
            ) from exc
        if sep is None:
            return text.split()
        return next(csv.reader([text], delimiter=sep))

    def chunks(self, chunk_rows: int) -> Iterator[_Chunk]:
        line = self._first_line
        with self._handle:
            while raw_lines := list(islice(self._handle, chunk_rows)):
                body = b"".join(raw_lines)
                self.digest.update(body)
                if line == 1 and body.startswith(_BOM):  # headerless file with a byte order mark
                    raw_lines[0], body = raw_lines[0][len(_BOM) :], body[len(_BOM) :]
                rejects = _undecodable(body, raw_lines)
                skip = {r.position for r in rejects}
                fields, split_rejects = _split_fields(raw_lines, body, skip, self.spec.sep, self.spec.names)
                numbers = np.arange(line, line + len(raw_lines), dtype=np.int64)
                yield _Chunk(numbers, raw_lines, fields, rejects + split_rejects)
                line += len(raw_lines)


class _ParquetSource:
    """Streams a parquet file as record batches (row numbers start at 1)."""

    def __init__(self, path: Path, mapping: Mapping[str, str], event_map: Mapping[str, str]) -> None:
        self.path = path
        self._file = pq.ParquetFile(path)
        names = self._file.schema_arrow.names
        _check_mapping_sources(mapping, names)
        self._columns = sorted(set(mapping.values()))
        self.spec = _Spec(None, names, _convert_mapped(mapping, event_map))
        self.digest = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                self.digest.update(block)

    def chunks(self, chunk_rows: int) -> Iterator[_Chunk]:
        row = 1
        for batch in self._file.iter_batches(batch_size=chunk_rows, columns=self._columns):
            frame = batch.to_pandas()
            numbers = np.arange(row, row + len(frame), dtype=np.int64)
            yield _Chunk(numbers, None, frame, [])
            row += len(frame)


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"PAR1"


# --------------------------------------------------------------------------------------------- output


class _SeenHashes:
    """Exact-repeat detection for `drop_duplicates` with 8 bytes per kept event (sorted runs, merged like
    an LSM tree so each check is a few binary searches)."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def _contains(self, hashes: np.ndarray) -> np.ndarray:
        found = np.zeros(len(hashes), dtype=bool)
        for run in self._runs:
            where = np.searchsorted(run, hashes).clip(max=len(run) - 1)
            found |= run[where] == hashes
        return found

    def add_new(self, hashes: np.ndarray) -> np.ndarray:
        """Remember `hashes`; return the mask of those seen before (earlier chunks or earlier in this one)."""
        seen = self._contains(hashes) | pd.Series(hashes).duplicated().to_numpy()
        run = np.unique(hashes[~seen])
        if not len(run):
            return seen
        while self._runs and len(self._runs[-1]) <= 2 * len(run):
            run = np.union1d(self._runs.pop(), run)
        self._runs.append(run)
        return seen


class _Output:
    """Stages parts and the quarantine file under `<out>/_staging/<source key>/`, then commits them."""

    def __init__(self, out_dir: Path, source: Path, fmt: str) -> None:
        self.out_dir = out_dir
        self.fmt = fmt
        self.source_key = hashlib.sha256(str(source).encode()).hexdigest()[:12]
        self.staging = out_dir / "_staging" / self.source_key
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        self.parts: list[Path] = []
        self.quarantine_name = f"{source.name}.{self.source_key}.jsonl"
        self._quarantine: TextIO | None = None

    def write_events(self, events: pd.DataFrame, chunk_index: int) -> None:
        if len(events):
            self.parts += write_event_parts(events, self.staging, part_name=f"chunk-{chunk_index:05d}")

    def quarantine(self, records: list[dict[str, Any]]) -> None:
        if self._quarantine is None:
            self._quarantine = (self.staging / "quarantine.jsonl").open("w", encoding="utf-8")
        for record in records:
            self._quarantine.write(json.dumps(record, ensure_ascii=False) + "\n")

    def commit(self, import_key: str) -> Path | None:
        """Move the staged parts into place, drop older parts of this source; return the quarantine path."""
        final: set[Path] = set()
        for staged in self.parts:
            chunk = staged.stem.removeprefix("chunk-")
            target = (
                self.out_dir / staged.parent / f"{self.fmt}-{self.source_key}-{import_key}-{chunk}.parquet"
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.staging / staged, target)
            final.add(target)
        self._remove_stale_parts(final)
        quarantine = self._commit_quarantine()
        shutil.rmtree(self.staging, ignore_errors=True)
        _remove_if_empty(self.out_dir / "_staging")
        return quarantine

    def _remove_stale_parts(self, keep: set[Path]) -> None:
        for part in self.out_dir.glob(f"date=*/*-{self.source_key}-*.parquet"):
            if part not in keep:
                part.unlink()
                _remove_if_empty(part.parent)

    def _commit_quarantine(self) -> Path | None:
        target = self.out_dir / "_quarantine" / self.quarantine_name
        if self._quarantine is None:
            target.unlink(missing_ok=True)
            return None
        self._quarantine.close()
        target.parent.mkdir(exist_ok=True)
        os.replace(self.staging / "quarantine.jsonl", target)
        return target

    def abort(self) -> None:
        if self._quarantine is not None:
            self._quarantine.close()
        shutil.rmtree(self.staging, ignore_errors=True)
        _remove_if_empty(self.out_dir / "_staging")


def _remove_if_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass


# --------------------------------------------------------------------------------------------- import


def import_events(
    path: str | os.PathLike[str],
    fmt: str,
    out_dir: str | os.PathLike[str],
    *,
    mapping: Mapping[str, str] | None = None,
    event_map: Mapping[str, str] | None = None,
    chunk_rows: int = 200_000,
    sep: str = ",",
    drop_duplicates: bool = False,
) -> ImportSummary:
    """Import one raw event file into the canonical event table under `out_dir` (partitioned parquet).

    `fmt` is one of FORMATS. For "csv" (a CSV file or a parquet file), `mapping` maps canonical columns to
    source columns (event_time, user_id and event_type are required), `event_map` maps source event values
    to canonical types and `sep` is the CSV separator. `drop_duplicates` skips exact repeats of an event
    already taken from the same file (counted in `duplicates_skipped`); by default every row is kept,
    because real logs (e.g. CDNOW) hold genuine identical rows.

    Raises ImportFormatError (before writing anything) when the file or the options cannot be imported.
    Bad rows never raise: they are quarantined with a reason (see the module docstring).
    """
    started = time.perf_counter()
    source_path = Path(path).resolve()
    events_dir = Path(out_dir)
    mapping, event_map = _check_options(source_path, fmt, mapping, event_map, chunk_rows, sep)
    source = _open_source(source_path, fmt, mapping, event_map, sep)
    starts = _diginetica_session_starts(source_path, chunk_rows) if fmt == "diginetica" else None
    ctx = _Context(EARLIEST, pd.Timestamp.now(tz="UTC") + FUTURE_SLACK, session_starts=starts)
    summary = ImportSummary(source=source_path, format=fmt, events_dir=events_dir)
    run = _ImportRun(source, ctx, _Output(events_dir, source_path, fmt), summary, drop_duplicates)
    config = json.dumps([fmt, mapping, event_map, sep, chunk_rows, drop_duplicates, _IMPORTER_VERSION])
    run.execute(chunk_rows, config)
    summary.seconds = time.perf_counter() - started
    if not summary.reconciles:  # a bug, never a data problem: refuse to report a summary that loses rows
        raise RuntimeError(f"internal error: import counts do not reconcile: {summary.to_json()}")
    return summary


class _ImportRun:
    """One import: converts each chunk, stages good events and quarantined rows, counts both, commits."""

    def __init__(
        self,
        source: _TextSource | _ParquetSource,
        ctx: _Context,
        output: _Output,
        summary: ImportSummary,
        drop_duplicates: bool,
    ) -> None:
        self.source = source
        self.ctx = ctx
        self.output = output
        self.summary = summary
        self.seen = _SeenHashes() if drop_duplicates else None

    def execute(self, chunk_rows: int, config: str) -> None:
        """Stage every chunk, then commit; on any failure remove what was staged and re-raise."""
        try:
            for index, chunk in enumerate(self.source.chunks(chunk_rows)):
                self._take(chunk, index)
            self.summary.content_sha256 = self.source.digest.hexdigest()
            import_key = hashlib.sha256((self.summary.content_sha256 + config).encode()).hexdigest()[:12]
            self.summary.quarantine_path = self.output.commit(import_key)
        except BaseException:
            self.output.abort()
            raise
        self.summary.parts = len(self.output.parts)

    def _take(self, chunk: _Chunk, index: int) -> None:
        verdicts = _Verdicts(chunk.fields.index)
        events = self.source.spec.convert(chunk.fields, verdicts, self.ctx)
        keep = verdicts.good.to_numpy()
        good = events if keep.all() else events[keep]  # indexing copies every column: skip it when we can
        skipped = 0
        if self.seen is not None and len(good):
            repeat = self.seen.add_new(pd.util.hash_pandas_object(good, index=False).to_numpy())
            skipped = int(repeat.sum())
            good = good[~repeat]
        self.output.write_events(good, index)
        records = _quarantine_records(chunk, verdicts)
        if records:
            self.output.quarantine(records)
        self._count(len(chunk.line_numbers), good, skipped, records)

    def _count(self, read: int, good: pd.DataFrame, skipped: int, records: list[dict[str, Any]]) -> None:
        summary = self.summary
        summary.read += read
        summary.written += len(good)
        summary.duplicates_skipped += skipped
        summary.quarantined += len(records)
        for code in (r["code"] for r in records):
            summary.quarantine_reasons[code] = summary.quarantine_reasons.get(code, 0) + 1
        for event_type, n in good["event_type"].value_counts().items():
            summary.by_event_type[str(event_type)] = summary.by_event_type.get(str(event_type), 0) + int(n)


def _quarantine_records(chunk: _Chunk, verdicts: _Verdicts) -> list[dict[str, Any]]:
    bad = verdicts.codes.dropna()
    failures = [(r.position, r.code, r.reason) for r in chunk.rejects]
    messages = verdicts.reasons[bad.index]
    failures += [
        (int(p), str(c), str(m)) for p, c, m in zip(bad.index, bad.to_numpy(), messages, strict=True)
    ]
    failures.sort()
    return [
        {"line": int(chunk.line_numbers[p]), "code": code, "reason": reason, "raw": chunk.raw_text(p)}
        for p, code, reason in failures
    ]


def _check_options(
    path: Path,
    fmt: str,
    mapping: Mapping[str, str] | None,
    event_map: Mapping[str, str] | None,
    chunk_rows: int,
    sep: str,
) -> tuple[dict[str, str] | None, dict[str, str]]:
    """Validate the arguments; return (mapping, effective event map for csv)."""
    if fmt not in FORMATS:
        raise ImportFormatError(f"unknown format {fmt!r}; expected one of {list(FORMATS)}")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}; pass the path of a raw event file")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    if len(sep) != 1:
        raise ImportFormatError(f"sep must be one character, got {sep!r}")
    if fmt != "csv":
        if mapping or event_map:
            raise ImportFormatError(f"mapping/event_map apply to --format csv only; {fmt} has a fixed layout")
        return None, {}
    return _check_mapping(mapping), _effective_event_map(event_map)


def _check_mapping(mapping: Mapping[str, str] | None) -> dict[str, str]:
    mapping = dict(mapping or {})
    unknown = sorted(set(mapping) - set(COLUMNS))
    if unknown:
        raise ImportFormatError(
            f"mapping has unknown canonical column(s) {unknown}; expected keys from {list(COLUMNS)}"
        )
    required = [c for c in ("event_time", "user_id", "event_type") if c not in mapping]
    if required:
        raise ImportFormatError(
            f"--format csv needs a mapping for {required}, e.g. --map event_time=ts --map user_id=uid "
            f"--map event_type=action"
        )
    return mapping


def _effective_event_map(event_map: Mapping[str, str] | None) -> dict[str, str]:
    effective = {t: t for t in EVENT_TYPES}
    effective.update(event_map or {})
    wrong = {src: dst for src, dst in effective.items() if dst not in EVENT_TYPES}
    if wrong:
        raise ImportFormatError(
            f"event_map maps to non-canonical type(s) {wrong}; targets must be in {list(EVENT_TYPES)}"
        )
    return effective


def _open_source(
    path: Path, fmt: str, mapping: Mapping[str, str] | None, event_map: Mapping[str, str], sep: str
) -> _TextSource | _ParquetSource:
    if fmt == "csv" and _is_parquet(path):
        assert mapping is not None
        return _ParquetSource(path, mapping, event_map)
    has_header, file_sep, resolve = _spec_resolver(fmt, mapping, event_map, sep)
    return _TextSource(path, has_header, file_sep, resolve)
