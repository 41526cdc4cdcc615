"""Import benchmark: generate a REES46-format CSV (default 10 million rows) and import it.

    .venv/bin/python -m bench.perf.importer                 # 10M rows, a few minutes
    .venv/bin/python -m bench.perf.importer --rows 200000   # quick

The file is generated with numpy + pyarrow in chunks (bounded memory) in a temporary directory, with one
row in RATE_BAD carrying a negative price and a truncated last line, so the quarantine path runs at scale
too. The import runs in a child process so that its peak RSS (the child's ru_maxrss) is not mixed up
with the generator's. Prints a markdown table; exits non-zero if the counts do not reconcile or the peak
RSS reaches 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
RATE_BAD = 100_000  # every RATE_BAD-th row gets a negative price (quarantined)
RSS_LIMIT_MIB = 2048
EVENT_TYPES = np.array(["view", "cart", "remove_from_cart", "purchase"])
EVENT_P = [0.92, 0.04, 0.02, 0.02]
CODES = np.array(
    ["", "electronics.smartphone", "appliances.kitchen.mixer", "apparel.shoes", "furniture.sofa"]
)
BRANDS = np.array(["", "samsung", "apple", "xiaomi", "shiseido", "elenberg", "aqua", "lenovo"])
HEX = np.array([f"{i:02x}" for i in range(256)])


def _sessions(rng: np.random.Generator, n: int) -> pa.Array:
    """n UUID-like strings, vectorised: random bytes -> hex -> 8-4-4-4-12 groups."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    flat = pa.array(np.ascontiguousarray(HEX[raw]).view("<U32").ravel())
    cuts = [(0, 8), (8, 12), (12, 16), (16, 20), (20, 32)]
    parts = [pc.utf8_slice_codeunits(flat, a, b) for a, b in cuts]
    return pc.binary_join_element_wise(*parts, "-")


def _chunk(
    rng: np.random.Generator, start_row: int, n: int, seconds_per_row: float, bad_every: int
) -> pa.Table:
    rows = np.arange(start_row, start_row + n)
    seconds = (rows * seconds_per_row).astype("int64") + 1_569_888_000  # from 2019-10-01 00:00:00 UTC
    times = pc.strftime(pa.array(seconds, pa.timestamp("s")), format="%Y-%m-%d %H:%M:%S UTC")
    cents = rng.integers(50, 250_000, size=n)
    cents[(rows % bad_every) == bad_every - 1] *= -1
    products = rng.integers(1_000_000, 60_000_000, size=n)
    return pa.table(
        {
            "event_time": times,
            "event_type": EVENT_TYPES[rng.choice(len(EVENT_TYPES), size=n, p=EVENT_P)],
            "product_id": products,
            "category_id": 2_053_013_552_000_000_000 + products % 1000,
            "category_code": CODES[products % len(CODES)],
            "brand": BRANDS[rng.integers(0, len(BRANDS), size=n)],
            "price": pc.cast(pa.array(cents / 100), pa.string()),
            "user_id": rng.integers(500_000_000, 580_000_000, size=n),
            "user_session": _sessions(rng, n),
        }
    )


def generate(
    path: Path, rows: int, *, chunk: int = 1_000_000, seed: int = 46, bad_every: int = RATE_BAD
) -> int:
    """Write `rows` data lines (the last one truncated); return how many rows the importer must quarantine."""
    rng = np.random.default_rng(seed)
    seconds_per_row = 31 * 86_400 / max(rows, 1)  # one month, like a REES46 monthly file
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with path.open("wb") as sink:
        sink.write((HEADER + "\n").encode())
        for start in range(0, rows - 1, chunk):
            n = min(chunk, rows - 1 - start)
            pacsv.write_csv(_chunk(rng, start, n, seconds_per_row, bad_every), sink, write_options=options)
        sink.write(b"2019-10-31 23:59:59 UTC,view,1004856,2053013555631882655,,samsung,130.76,5")  # cut off
    return (rows - 1) // bad_every + 1  # negative prices + the truncated line


_CHILD = """
import json, resource, sys, time
from registry.events.importers import import_events
started = time.perf_counter()
summary = import_events(sys.argv[1], "rees46", sys.argv[2], chunk_rows=int(sys.argv[3]))
seconds = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps([summary.to_dict(), seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss]))
"""


def run_import(path: Path, out: Path, chunk_rows: int) -> tuple[dict, float, float, float]:
    """Import in a fresh process; return (summary, wall seconds, CPU seconds, peak RSS MiB of that process).

    CPU seconds include the interpreter start and imports; on a shared machine they say more than wall time.
    """
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(out), str(chunk_rows)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"import process failed ({done.returncode}):\n{done.stderr}")
    summary, seconds, cpu_seconds, max_rss_kib = json.loads(done.stdout.strip().splitlines()[-1])
    return summary, seconds, cpu_seconds, max_rss_kib / 1024  # ru_maxrss is in KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="data lines to generate (default 10M)")
    parser.add_argument("--chunk-rows", type=int, default=200_000, help="importer chunk size")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where to put the file (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    if args.rows < 2:
        parser.error("--rows must be at least 2")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        source, out = Path(tmp) / "2019-Oct-synthetic.csv", Path(tmp) / "events"
        started = time.perf_counter()
        expected_bad = generate(source, args.rows)
        generated = time.perf_counter() - started
        size_mib = source.stat().st_size / 2**20
        print(f"generated {args.rows:,} rows ({size_mib:,.0f} MiB) in {generated:.1f}s", flush=True)
        summary, seconds, cpu_seconds, rss_mib = run_import(source, out, args.chunk_rows)
    print()
    print(
        "| rows | file MiB | chunk rows | seconds | rows/s | CPU s | peak RSS MiB | written | quarantined |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    cells = [
        f"{summary['read']:,}",
        f"{size_mib:,.0f}",
        f"{args.chunk_rows:,}",
        f"{seconds:.1f}",
        f"{summary['read'] / seconds:,.0f}",
        f"{cpu_seconds:.1f}",
        f"{rss_mib:,.0f}",
        f"{summary['written']:,}",
        f"{summary['quarantined']:,}",
    ]
    print("| " + " | ".join(cells) + " |")
    problems = []
    if summary["read"] != args.rows or summary["quarantined"] != expected_bad or not summary["reconciles"]:
        problems.append(
            f"counts: expected read {args.rows:,} and quarantined {expected_bad:,}, got {summary}"
        )
    if rss_mib >= RSS_LIMIT_MIB:
        problems.append(f"peak RSS {rss_mib:,.0f} MiB reached the {RSS_LIMIT_MIB} MiB limit")
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
