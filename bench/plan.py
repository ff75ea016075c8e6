"""Plans per second: plan_day over 100,000 random regimens on one core.

The regimens are built (seeded, reproducible) before the clock starts; only plan_day is
timed. Prints plans/s, how many were refused, and the p50/p99 latency of one plan.

    .venv/bin/python bench/plan.py [--count N] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import date, timedelta
from typing import Any

from planner.day import plan_day
from planner.plan import PlanRefused
from schemas.regimen import Regimen

ZONES = ("Europe/Copenhagen", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")
CLOCK_CHANGE_DAYS = (date(2026, 3, 29), date(2026, 10, 25), date(2026, 3, 8), date(2026, 11, 1))
SUPPLEMENTS = (
    ("iron", ("9 mg", "18 mg", "65 mg")),
    ("ferrous bisglycinate", ("14 mg", "25 mg")),
    ("vitamin C", ("100 mg", "250 mg", "500 mg")),
    ("calcium carbonate", ("500 mg", "1 g")),
    ("zinc", ("10 mg", "15 mg", "30 mg")),
    ("copper gluconate", ("1 mg", "2 mg")),
    ("selenium", ("50 µg", "100 µg", "200 µg")),
    ("magnesium citrate", ("300 mg", "375 mg")),
    ("magnesium oxide", ("400 mg",)),
    ("ashwagandha", ("600 mg",)),
)


def _clock(rng: random.Random, low: int, high: int) -> str:
    minute = rng.randrange(low, high + 1, 5)
    return f"{minute // 60:02d}:{minute % 60:02d}"


def random_regimen(rng: random.Random) -> dict[str, Any]:
    wake = rng.randrange(5 * 60, 9 * 60 + 1, 15)
    sleep = rng.randrange(20 * 60, 23 * 60 + 46, 15)
    meals = [
        {
            "name": name,
            "at": _clock(rng, low, high),
            "contains": rng.sample(["dairy", "calcium", "black_tea", "other"], rng.randint(0, 2)),
        }
        for name, low, high in (
            ("breakfast", 360, 600),
            ("lunch", 690, 810),
            ("dinner", 1050, 1230),
        )
        if rng.random() < 0.8
    ]
    medications = [
        {"name": f"medicine {index}", "at": [_clock(rng, 360, 1320)]}
        for index in range(rng.choice((0, 0, 1, 2)))
    ]
    supplements = []
    for _ in range(rng.randint(1, 6)):
        name, doses = rng.choice(SUPPLEMENTS)
        entry: dict[str, Any] = {
            "name": name,
            "dose": rng.choice(doses),
            "deficiency_confirmed": rng.random() < 0.5,
        }
        if rng.random() < 0.15:
            entry["at"] = _clock(rng, wake, sleep)
        supplements.append(entry)
    quiet = [{"from": "13:00", "to": "14:00"}] if rng.random() < 0.2 else []
    return {
        "person": {
            "name": "Bench Person",
            "phone": "+4520123456",
            "timezone": rng.choice(ZONES),
            "waking": {"from": _clock(rng, wake, wake), "to": _clock(rng, sleep, sleep)},
            "quiet": quiet,
        },
        "meals": meals,
        "medications": medications,
        "supplements": supplements,
    }


def random_day(rng: random.Random) -> date:
    if rng.random() < 0.1:
        return rng.choice(CLOCK_CHANGE_DAYS)
    return date(2026, 1, 1) + timedelta(days=rng.randrange(730))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20260329)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    cases = [
        (Regimen.model_validate(random_regimen(rng)), random_day(rng)) for _ in range(args.count)
    ]
    latencies: list[float] = []
    refused = 0
    # CPU time of this process: the figure for one core even when other work shares the machine
    clock = time.process_time
    wall_started = time.perf_counter()
    started = clock()
    for regimen, day in cases:
        before = clock()
        try:
            plan_day(regimen, day)
        except PlanRefused:
            refused += 1
        latencies.append(clock() - before)
    elapsed = clock() - started
    wall = time.perf_counter() - wall_started
    cuts = statistics.quantiles(latencies, n=100)
    print(f"regimens      {len(cases):,}")
    print(f"plans/s       {len(cases) / elapsed:,.0f} per CPU-second on one core  (goal: 5,000)")
    print(f"wall clock    {len(cases) / wall:,.0f} plans/s with this machine's other load")
    print(f"refused       {refused:,} ({refused / len(cases):.1%})")
    print(f"p50 latency   {cuts[49] * 1e6:,.0f} µs")
    print(f"p99 latency   {cuts[98] * 1e6:,.0f} µs")
    print(f"total         {elapsed:.2f} CPU-s, {wall:.2f} s wall")


if __name__ == "__main__":
    main()
