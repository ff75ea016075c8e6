"""Plans per second: plan_day over 100,000 random regimens on one core.

The regimens are built (seeded, reproducible) before the clock starts; only plan_day is
timed. Each supplement name and meal content is written in Danish with the chance --danish
(the same regimens otherwise: the language is drawn for every name either way). Prints
plans/s, how many were refused, and the p50/p99 latency of one plan.

--against REV measures the code of git revision REV too, in the same run: rounds alternate
between REV (English names, which it reads as this tree does) and this tree (English names,
then the Danish share), each round in a fresh process on one tree, so that the machine's load
falls on both alike. The figures to compare are the English ones (REV may not read Danish);
the Danish row is the same regimens with the --danish share of their words in Danish. On a
machine others share, a round's figure varies by tens of percent: the best round of each, and
the median of the round-by-round ratios, are the steadier figures.

    .venv/bin/python bench/plan.py [--count N] [--seed S] [--danish P] [--against REV]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ZONES = ("Europe/Copenhagen", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")
CLOCK_CHANGE_DAYS = (date(2026, 3, 29), date(2026, 10, 25), date(2026, 3, 8), date(2026, 11, 1))
# (English name, Danish name, doses)
SUPPLEMENTS = (
    ("iron", "Jern", ("9 mg", "18 mg", "65 mg")),
    ("ferrous bisglycinate", "jernbisglycinat", ("14 mg", "25 mg")),
    ("vitamin C", "C-vitamin", ("100 mg", "250 mg", "500 mg")),
    ("calcium carbonate", "Kalciumcarbonat", ("500 mg", "1 g")),
    ("zinc", "Zink", ("10 mg", "15 mg", "30 mg")),
    ("copper gluconate", "kobbergluconat", ("1 mg", "2 mg")),
    ("selenium", "Selen", ("50 µg", "100 µg", "200 µg")),
    ("magnesium citrate", "Magnesiumcitrat", ("300 mg", "375 mg")),
    ("magnesium oxide", "Magnesium oxid", ("400 mg",)),
    ("ashwagandha", "ashwagandha", ("600 mg",)),
)
# (English content, Danish content)
CONTENTS = (("dairy", "mælk"), ("calcium", "kalk"), ("black_tea", "sort te"), ("other", "andet"))


def _clock(rng: random.Random, low: int, high: int) -> str:
    minute = rng.randrange(low, high + 1, 5)
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _words(rng: random.Random, pair: tuple[str, str], danish: float) -> str:
    return pair[1] if rng.random() < danish else pair[0]


def random_regimen(rng: random.Random, danish: float = 0.0) -> dict[str, Any]:
    wake = rng.randrange(5 * 60, 9 * 60 + 1, 15)
    sleep = rng.randrange(20 * 60, 23 * 60 + 46, 15)
    meals = [
        {
            "name": name,
            "at": _clock(rng, low, high),
            "contains": [
                _words(rng, pair, danish) for pair in rng.sample(CONTENTS, rng.randint(0, 2))
            ],
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
        english, danish_name, doses = rng.choice(SUPPLEMENTS)
        entry: dict[str, Any] = {
            "name": _words(rng, (english, danish_name), danish),
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


@dataclass
class Measured:
    plans: int
    cpu_seconds: float
    wall_seconds: float
    refused: int
    p50: float
    p99: float
    code: str = ""  # where the planner was imported from

    @property
    def rate(self) -> float:
        return self.plans / self.cpu_seconds


def measure(count: int, seed: int, danish: float) -> Measured:
    """plan_day over `count` regimens of the code this process imports."""
    import planner
    from planner.day import plan_day
    from planner.plan import PlanRefused
    from schemas.regimen import Regimen

    rng = random.Random(seed)
    cases = [
        (Regimen.model_validate(random_regimen(rng, danish)), random_day(rng)) for _ in range(count)
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
    return Measured(len(cases), elapsed, wall, refused, cuts[49], cuts[98], planner.__file__ or "")


def report(measured: Measured) -> None:
    plans = measured.plans
    print(f"regimens      {plans:,}")
    print(f"plans/s       {measured.rate:,.0f} per CPU-second on one core  (goal: 5,000)")
    print(f"wall clock    {plans / measured.wall_seconds:,.0f} plans/s with this machine's load")
    print(f"refused       {measured.refused:,} ({measured.refused / plans:.1%})")
    print(f"p50 latency   {measured.p50 * 1e6:,.0f} µs")
    print(f"p99 latency   {measured.p99 * 1e6:,.0f} µs")
    print(f"total         {measured.cpu_seconds:.2f} CPU-s, {measured.wall_seconds:.2f} s wall")


def _in_tree(tree: Path, count: int, seed: int, danish: float) -> Measured:
    """One measurement in a fresh process that imports the code of `tree`."""
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    arguments = [sys.executable, __file__, "--count", str(count), "--seed", str(seed)]
    arguments += ["--danish", str(danish), "--json"]
    result = subprocess.run(
        arguments, cwd=tree, env=environment, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"bench/plan.py: the run in {tree} failed: {result.stderr.strip()}")
    measured = Measured(**json.loads(result.stdout))
    if not Path(measured.code).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"bench/plan.py: the run meant for {tree} imported {measured.code}")
    return measured


def _combined(rounds: list[Measured]) -> Measured:
    return Measured(
        plans=sum(m.plans for m in rounds),
        cpu_seconds=sum(m.cpu_seconds for m in rounds),
        wall_seconds=sum(m.wall_seconds for m in rounds),
        refused=sum(m.refused for m in rounds),
        p50=statistics.median(m.p50 for m in rounds),
        p99=statistics.median(m.p99 for m in rounds),
    )


def against(revision: str, count: int, seed: int, danish: float, rounds: int) -> None:
    """This tree and `revision` measured in alternating rounds of one run, side by side."""
    with tempfile.TemporaryDirectory(prefix="dosewise-bench-") as scratch:
        before = Path(scratch) / "before"
        worktree = ["git", "-C", str(ROOT), "worktree"]
        added = subprocess.run(
            [*worktree, "add", "--quiet", "--detach", str(before), revision],
            capture_output=True,
            text=True,
            check=False,
        )
        if added.returncode != 0:
            raise SystemExit(f"bench/plan.py: no tree of {revision!r}: {added.stderr.strip()}")
        try:
            runs: dict[str, list[Measured]] = {"before": [], "after": [], "after, Danish": []}
            size = max(1, count // rounds)
            trees = {"before": (before, 0.0), "after": (ROOT, 0.0), "after, Danish": (ROOT, danish)}
            order = list(trees)
            for round_number in range(rounds):
                # each tree goes first, in the middle and last in turn: no place in the round
                # (a warmer or a busier moment) favours one of them
                for key in order[round_number % 3 :] + order[: round_number % 3]:
                    tree, share = trees[key]
                    runs[key].append(_in_tree(tree, size, seed + round_number, share))
        finally:
            subprocess.run([*worktree, "remove", "--force", str(before)], check=False)
    print(f"{rounds} alternating rounds of {size:,} regimens; CPU time of one core")
    print(
        f"{'code':<42} {'plans/s':>9} {'best round':>10} {'p50 µs':>7} {'p99 µs':>7} {'refused':>8}"
    )
    labels = {
        "before": f"{revision} (before), English names",
        "after": "this tree, English names",
        "after, Danish": f"this tree, {danish:.0%} of names in Danish",
    }
    for key, label in labels.items():
        total = _combined(runs[key])
        best = max(measured.rate for measured in runs[key])
        print(
            f"{label:<42} {total.rate:>9,.0f} {best:>10,.0f} {total.p50 * 1e6:>7,.0f} "
            f"{total.p99 * 1e6:>7,.0f} {total.refused / total.plans:>8.1%}"
        )
    ratio = _combined(runs["after"]).rate / _combined(runs["before"]).rate
    each = sorted(a.rate / b.rate for a, b in zip(runs["after"], runs["before"], strict=True))
    print(
        f"this tree / {revision}: {ratio:.3f} (English names, the same regimens; "
        f"round by round {each[0]:.3f} to {each[-1]:.3f}, median {statistics.median(each):.3f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20260329)
    parser.add_argument(
        "--danish", type=float, default=0.5, help="the chance of each name being Danish"
    )
    parser.add_argument("--against", metavar="REV", help="also measure git revision REV")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds for --against")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.against:
        against(args.against, args.count, args.seed, args.danish, args.rounds)
        return
    measured = measure(args.count, args.seed, args.danish)
    if args.json:
        print(json.dumps(measured.__dict__))
    else:
        report(measured)


if __name__ == "__main__":
    main()
