"""Benchmark the synthetic event generator at ~1M and ~10M events.

Each size runs in its own child process so that its peak RSS (resource.getrusage) is its own. Prints a
markdown table. Run: `.venv/bin/python -m bench.perf.generate` (add `--sizes 1m` for the small one only).
The machine's 1-minute load average is printed too: on shared cores wall time depends on the neighbours,
CPU time much less so.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

# users x 90 days; about 2.4 events per user-day with the generator's defaults.
SIZES: dict[str, tuple[int, int]] = {"1m": (4_600, 90), "10m": (46_000, 90)}
SEED = 0


def run_one(users: int, days: int) -> dict[str, float]:
    """Generate once in this process and measure it."""
    from registry.events.generate import generate_events

    wall, cpu = time.perf_counter(), time.process_time()
    frame = generate_events(users=users, days=days, seed=SEED)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"users": users, "days": days, "events": len(frame), "wall_s": wall, "cpu_s": cpu,
            "peak_rss_mib": peak_kib / 1024}  # fmt: skip


def run_in_child(users: int, days: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", __spec__.name, "--child", str(users), str(days)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["1m", "10m"])
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(*args.child)))
        return
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| events | users x days | wall s | CPU s | events/s (wall) | peak RSS MiB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in args.sizes:
        r = run_in_child(*SIZES[size])
        print(
            f"| {r['events']:,} | {r['users']:,} x {r['days']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} "
            f"| {r['events'] / r['wall_s']:,.0f} | {r['peak_rss_mib']:,.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
