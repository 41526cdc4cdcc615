"""The canonical event table: every importer and the generator write exactly these columns and types.

Optional columns a source does not have are null, never invented.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from registry.errors import UserError

EVENT_TYPES: tuple[str, ...] = ("view", "cart", "remove_from_cart", "favorite", "purchase", "search")

# Column -> pandas dtype. `user_id` is int64 in every built-in source (one type per repo, see DESIGN.md).
COLUMNS: dict[str, str] = {
    "event_time": "datetime64[ns, UTC]",
    "user_id": "int64",
    "event_type": "string",
    "item_id": "Int64",
    "category": "string",
    "brand": "string",
    "price": "float64",
    "quantity": "Int64",
    "session_id": "string",
    "query": "string",
}
REQUIRED = ("event_time", "user_id", "event_type")

ARROW_SCHEMA = pa.schema(
    [
        ("event_time", pa.timestamp("ns", tz="UTC")),
        ("user_id", pa.int64()),
        ("event_type", pa.string()),
        ("item_id", pa.int64()),
        ("category", pa.string()),
        ("brand", pa.string()),
        ("price", pa.float64()),
        ("quantity", pa.int64()),
        ("session_id", pa.string()),
        ("query", pa.string()),
    ]
)


class EventSchemaError(UserError, ValueError):
    """A frame does not have the canonical event columns or values."""


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` with exactly the canonical columns, in order, with canonical dtypes.

    Missing optional columns become null. Raises EventSchemaError naming the problem when a required
    column is missing or an event type is not canonical.
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise EventSchemaError(
            f"event frame lacks required column(s) {missing}; canonical columns are {list(COLUMNS)}"
        )
    out = pd.DataFrame(index=frame.index)
    for column, dtype in COLUMNS.items():
        if column in frame.columns:
            out[column] = frame[column]
        else:
            # float64 has no pd.NA; its null is NaN.
            null = np.nan if dtype == "float64" else pd.NA
            out[column] = pd.Series(null, index=frame.index, dtype=dtype)
        if column == "event_time":
            out[column] = pd.to_datetime(out[column], utc=True)
        elif dtype == "string" and isinstance(out[column].dtype, pd.StringDtype):
            pass  # python- or pyarrow-backed strings are both canonical text; converting copies every value
        else:
            out[column] = out[column].astype(dtype)
    unknown = sorted(set(out["event_type"].dropna().unique()) - set(EVENT_TYPES))
    if unknown:
        raise EventSchemaError(f"unknown event type(s) {unknown}; expected one of {list(EVENT_TYPES)}")
    if out["user_id"].isna().any() or out["event_time"].isna().any():
        raise EventSchemaError("user_id and event_time must not be null")
    return out.reset_index(drop=True)


def write_events(frame: pd.DataFrame, events_dir: Path, *, part_name: str = "part-0") -> Path:
    """Write canonical events as parquet partitioned by day (`date=YYYY-MM-DD/<part_name>.parquet`).

    Writing the same `part_name` again replaces that part, so re-running an import does not duplicate.
    """
    write_event_parts(frame, events_dir, part_name=part_name)
    return events_dir


def write_event_parts(frame: pd.DataFrame, events_dir: Path, *, part_name: str) -> list[Path]:
    """Like `write_events`, but return the part files written, relative to `events_dir`, one per UTC day.

    Each file is written to a hidden temporary name first and renamed into place, so a reader never sees
    a half-written part.
    """
    frame = conform(frame)
    events_dir.mkdir(parents=True, exist_ok=True)
    # One arrow conversion for the whole frame, then one slice per day (rows stay in order within a day).
    days = frame["event_time"].to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")  # UTC days
    if (days[1:] < days[:-1]).any():  # logs are mostly in time order; reorder only when needed
        order = np.argsort(days, kind="stable")
        frame, days = frame.iloc[order], days[order]
    table = pa.Table.from_pandas(frame, schema=ARROW_SCHEMA, preserve_index=False)
    starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]]) if len(days) else np.array([], dtype=int)
    written: list[Path] = []
    for start, stop in zip(starts, [*starts[1:], len(days)], strict=True):
        relative = Path(f"date={days[start]}") / f"{part_name}.parquet"
        target = events_dir / relative
        target.parent.mkdir(exist_ok=True)
        tmp = target.parent / f".{part_name}.parquet.tmp"
        pq.write_table(table.slice(start, stop - start), tmp)
        tmp.replace(target)
        written.append(relative)
    return written


def read_events(events_dir: Path) -> pd.DataFrame:
    """Read every canonical event under `events_dir`, sorted by time."""
    files = sorted(events_dir.glob("date=*/*.parquet"))
    if not files:
        raise FileNotFoundError(
            f"no events under {events_dir}; "
            "run `shopscore events generate` or `shopscore events import` first"
        )
    table = pa.concat_tables([pq.read_table(f, schema=ARROW_SCHEMA) for f in files])
    # Nullable integers stay integers (not float64 with NaN); conform gives the canonical dtypes.
    frame = conform(table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get))
    return frame.sort_values(["event_time", "user_id"], kind="stable").reset_index(drop=True)
