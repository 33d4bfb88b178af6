"""`make fuzz`: the long fuzz run (issue 9 E). Not a pytest file.

    python -m tests.fuzz.run                 # 6,000 cases per transport (12,000 in all)
    python -m tests.fuzz.run --cases 500     # shorter
    python -m tests.fuzz.run --seed 7        # another sequence (default: derandomized)

Starts a real Mosquitto and `camnode run` (tests/fuzz/harness.py), sends hypothesis-
generated requests for every command schema one at a time over MQTT, then over REST,
and prints per transport: sent, answered, ok, refused, internal errors, bad envelopes,
wrong HTTP statuses, config changes by refused commands; then thread deaths (uncaught
thread exceptions or tracebacks in the node's log), whether both transports still
answer, and the node's RSS before and after. Exit status 1 when a goal is missed
(100% answered, 0 deaths, 0 changes, 0 internal errors).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.fuzz.harness import Stats, Target, check, rest_commands, still_answering
from tests.fuzz.strategies import command_schemas, plain, request


def run(target: Target, transport: str, commands: list[str], cases: int,
        seed_value: int | None) -> Stats:
    stats = Stats()
    started = time.monotonic()

    @settings(max_examples=cases, derandomize=seed_value is None, database=None,
              deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.one_of(request(commands), plain()) if transport == "mqtt" else request(commands))
    def one(case):
        check(target, stats, transport, *case)
        if stats.sent % 1000 == 0:
            print(f"  {transport}: {stats.sent} sent, {time.monotonic() - started:.0f} s, "
                  f"node RSS {target.rss_kib() / 1024:.1f} MiB", flush=True)

    if seed_value is not None:
        one = seed(seed_value)(one)
    one()
    return stats


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="camnode's long fuzz run")
    ap.add_argument("--cases", type=int, default=6000, help="per transport (default 6000)")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stop the broker and node on SIGTERM too
    commands = sorted(command_schemas())
    target = Target().start()
    try:
        rss_before = target.rss_kib()
        started = time.monotonic()
        results = {"mqtt": run(target, "mqtt", commands, args.cases, args.seed)}
        results["rest"] = run(target, "rest", rest_commands(target, commands), args.cases,
                              args.seed)
        took = time.monotonic() - started
        time.sleep(0.5)
        extra = target.extra_mqtt_answers()
        alive = still_answering(target)
        deaths = target.thread_deaths()
        rss_after = target.rss_kib()
    finally:
        target.stop()
    print(f"\ncamnode fuzz: {args.cases} cases per transport, {took:.0f} s")
    rows = ["sent", "answered", "ok", "refused", "internal_errors", "bad_envelopes",
            "wrong_http_status", "config_changed_by_refused"]
    print(f"{'':<28}{'MQTT':>10}{'REST':>10}")
    for row in rows:
        print(f"{row.replace('_', ' '):<28}" + "".join(f"{getattr(results[t], row):>10}"
                                                      for t in ("mqtt", "rest")))
    for t in ("mqtt", "rest"):
        codes = ", ".join(f"{k} {v}" for k, v in sorted(results[t].codes.items()))
        print(f"{t} answers by code: {codes}")
    print(f"extra MQTT answers (more than one per request): {extra}")
    print(f"thread deaths / tracebacks in the node's log: {deaths}")
    print(f"both transports still answer: {'yes' if alive else 'NO'}")
    print(f"node RSS: {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB after")
    for t in ("mqtt", "rest"):
        for p in results[t].problems:
            print(f"  problem: {p}")
    total = sum(r.sent for r in results.values())
    good = (all(r.answered == r.sent and r.internal_errors == r.bad_envelopes ==
                r.wrong_http_status == r.config_changed_by_refused == 0
                for r in results.values()) and extra == 0 and deaths == 0 and alive)
    print(f"{'PASS' if good else 'FAIL'}: {total} requests, "
          f"{sum(r.answered for r in results.values())} answered")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
