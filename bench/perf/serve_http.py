"""HTTP throughput and latency at fixed concurrency: `shopscore serve` against Feast's own feature server
(`feast serve`) for the same FeatureService and workspace, both on loopback, measured in one run.

    .venv/bin/python -m bench.perf.serve_http [--profile redis] [--concurrency 16] [--seconds 10]

Both servers run as subprocesses with one worker each. The load generator is `wrk` when installed
(`apt-get install wrk`: C, so the generator costs little CPU next to the servers), else an asyncio/httpx
client; either keeps a fixed number of connections busy with single-user requests for random known users,
for a bounded time.
Prints a markdown table. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

from bench.common import settings_env, shop
from registry.features.feast_store import repo_config

HOST = "127.0.0.1"  # loopback only
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout}s")


async def load(make_request, users: list[int], concurrency: int, seconds: float) -> dict[str, float]:
    """Closed loop: `concurrency` workers each send the next request as soon as the last one answered."""
    latencies: list[float] = []
    errors = 0
    rng = random.Random(1)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        for _ in range(20):  # warm-up, not measured
            await make_request(client, rng.choice(users))
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    response = await make_request(client, rng.choice(users))
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000
    return {
        "rps": len(latencies) / elapsed,
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "errors": errors,
        "requests": len(latencies),
        "elapsed": elapsed,
    }


WRK_SCORE = """
users = {%s}
request = function()
  return wrk.format("GET", "/v1/score/" .. users[math.random(#users)])
end
"""
WRK_FEAST = """
users = {%s}
request = function()
  local user = users[math.random(#users)]
  local body = '{"feature_service": "purchase_v1", "entities": {"user_id": [' .. user .. ']}}'
  return wrk.format("POST", "/get-online-features", {["Content-Type"] = "application/json"}, body)
end
"""
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def run_wrk(base: str, script: str, users: list[int], concurrency: int, seconds: float) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script % ", ".join(str(u) for u in users))
    out = subprocess.run(
        ["wrk", "-t2", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency", "-s", lua.name, base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(lua.name)
    if os.environ.get("SHOPSCORE_BENCH_VERBOSE"):
        print(out, file=sys.stderr)

    def latency(pct: str) -> float:
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)([a-z]+)\s*$", out, re.M)
        if found is None:  # wrk prints no distribution when nothing completed
            return float("nan")
        return float(found.group(1)) * UNIT_MS.get(found.group(2), float("nan"))

    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency("50"),
        "p99": latency("99"),
        "errors": (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "elapsed": max(1, round(seconds)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="", help='"" (SQLite online store) or "redis"')
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per server")
    args = parser.parse_args()

    settings, users = shop(args.profile)
    use_wrk = shutil.which("wrk") is not None
    env = {**os.environ, **settings_env(settings)}
    ours, feast_port = free_port(), free_port()
    # `feast serve` reads feature_store.yaml from its repo dir: write the profile's config, variables
    # expanded, into a temporary repo dir pointing at the same registry and online store.
    repo = Path(tempfile.mkdtemp(prefix="shopscore-feast-serve-"))
    config = repo_config(settings).model_dump(
        mode="json", by_alias=True, exclude_none=True, exclude={"repo_path"}
    )
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config))
    servers = {
        "shopscore serve (lookup + model)": subprocess.Popen(
            [str(BIN / "shopscore"), "serve", "--host", HOST, "--port", str(ours)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        "feast serve (lookup only)": subprocess.Popen(
            [
                str(BIN / "feast"),
                "-c",
                str(repo),
                "serve",
                "-h",
                HOST,
                "-p",
                str(feast_port),
                "--no-access-log",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    }

    async def score(client: httpx.AsyncClient, user: int) -> httpx.Response:
        return await client.get(f"http://{HOST}:{ours}/v1/score/{user}")

    async def feast_lookup(client: httpx.AsyncClient, user: int) -> httpx.Response:
        body = {"feature_service": "purchase_v1", "entities": {"user_id": [user]}}
        return await client.post(f"http://{HOST}:{feast_port}/get-online-features", json=body)

    try:
        wait_ready(f"http://{HOST}:{ours}/readyz", servers["shopscore serve (lookup + model)"])
        wait_ready(f"http://{HOST}:{feast_port}/health", servers["feast serve (lookup only)"])
        results: dict[str, list[dict[str, float]]] = {}
        targets = {
            "feast serve (lookup only)": (feast_lookup, f"http://{HOST}:{feast_port}", WRK_FEAST),
            "shopscore serve (lookup + model)": (score, f"http://{HOST}:{ours}", WRK_SCORE),
        }
        # Alternate short rounds so both servers see the same background load on a shared machine.
        rounds = 2
        for _ in range(rounds):
            for name, (fn, base, script) in targets.items():
                seconds = args.seconds / rounds
                if use_wrk:
                    r = run_wrk(base, script, users, args.concurrency, seconds)
                else:
                    r = asyncio.run(load(fn, users, args.concurrency, seconds))
                results.setdefault(name, []).append(r)
    finally:
        for process in servers.values():
            process.terminate()
        for process in servers.values():
            process.wait(timeout=30)

    profile = args.profile or "sqlite (embedded)"
    loader = "wrk" if use_wrk else "httpx/asyncio"
    print(f"\n### HTTP, one worker per server, concurrency {args.concurrency} ({loader}), store: {profile}\n")
    print("| server | requests/s | p50 ms | p99 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: |")
    summary = {}
    for name, rs in results.items():
        rps = sum(r["requests"] for r in rs) / sum(r["elapsed"] for r in rs)
        p50 = float(np.mean([r["p50"] for r in rs]))
        p99 = float(max(r["p99"] for r in rs))
        errors = sum(r["errors"] for r in rs)
        summary[name] = rps
        print(f"| {name} | {rps:,.0f} | {p50:.1f} | {p99:.1f} | {errors} |")
    ratio = summary["shopscore serve (lookup + model)"] / summary["feast serve (lookup only)"]
    print(f"| throughput ratio shopscore / feast | {ratio:.2f}x | | | |")


if __name__ == "__main__":
    main()
