"""The command line: ``python -m benchmarks [run] [options]`` (``run`` is the default and only command).

python -m benchmarks run --scenario all --peers torchserve,mosec,kserve
python -m benchmarks run --scenario echo-json,stream --quick --out /tmp/bench
python -m benchmarks run --scenario kserve-v1-json,kserve-v2-json,kserve-v2-binary --peers kserve
python -m benchmarks run --scenario grpc-small,grpc-1mb --peers kserve
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from .install import compile_server, ensure_matplotlib
from .measure import Settings
from .report import write
from .runner import OPTIONAL_PEERS, RunOptions, run
from .scenarios import SCENARIOS, SCENARIOS_BY_NAME, Scenario

BENCH_DIR = Path(__file__).resolve().parent
DEFAULTS = {
    "duration": 5.0,
    "warmup": 2.0,
    "start_warmup": 8.0,
    "repeats": 3,
    "stream_requests": 200,
    "stream_warmup": 20,
}
QUICK = {"duration": 2.0, "warmup": 1.0, "start_warmup": 1.0, "repeats": 1, "stream_requests": 50, "stream_warmup": 5}


def parse_scenarios(text: str) -> tuple[Scenario, ...]:
    if text == "all":
        return SCENARIOS
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in SCENARIOS_BY_NAME]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {unknown}; choose from all, {', '.join(SCENARIOS_BY_NAME)}"
        )
    return tuple(SCENARIOS_BY_NAME[name] for name in names)


def parse_peers(text: str) -> tuple[str, ...]:
    if text == "none":
        return ()
    if text == "all":
        return tuple(OPTIONAL_PEERS)
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in OPTIONAL_PEERS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown peer(s) {unknown}; choose from none, all, {', '.join(OPTIONAL_PEERS)}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark the model server beside TorchServe, Mosec, KServe and a bare aiohttp echo (ceiling).",
    )
    commands = parser.add_subparsers(dest="command")
    run_parser = commands.add_parser("run", help="run the benchmark and write latest.json, .md and .png")
    run_parser.add_argument("--scenario", type=parse_scenarios, default=SCENARIOS, help="all, or names with commas")
    run_parser.add_argument(
        "--peers",
        type=parse_peers,
        default=(),
        help="none (default), all, or names from torchserve,mosec,kserve with commas: the targets to compare",
    )
    run_parser.add_argument(
        "--client",
        choices=("auto", "wrk", "aiohttp"),
        default="auto",
        help="HTTP load generator (the grpc-* scenarios always use h2load)",
    )
    run_parser.add_argument("--repeats", type=int, help=f"measured runs per point (default {DEFAULTS['repeats']})")
    run_parser.add_argument("--duration", type=float, help=f"seconds per run (default {DEFAULTS['duration']:g})")
    run_parser.add_argument("--warmup", type=float, help=f"warm-up seconds per point (default {DEFAULTS['warmup']:g})")
    run_parser.add_argument(
        "--start-warmup",
        type=float,
        help="seconds of load after each start, before the first point (default 8: TorchServe's JIT needs it)",
    )
    run_parser.add_argument("--stream-requests", type=int, help="recorded streaming requests per run (default 200)")
    run_parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="where latest.* are written")
    run_parser.add_argument("--cache", type=Path, default=BENCH_DIR / ".cache", help="where peers install themselves")
    run_parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 1 run of 2 s per point, 1 s warm-up, 50 streaming requests (explicit options win)",
    )
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    if not argv or argv[0] not in ("run", "-h", "--help"):
        argv = ["run", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    for key, value in base.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.repeats < 1 or args.duration <= 0 or min(args.warmup, args.start_warmup) < 0 or args.stream_requests < 1:
        parser.error("--repeats and --stream-requests must be at least 1, --duration positive, --warmup not negative")
    return args


def options_from(args: argparse.Namespace) -> RunOptions:
    settings = Settings(
        args.duration, args.warmup, args.repeats, args.stream_requests, args.stream_warmup, args.start_warmup
    )
    return RunOptions(args.scenario, args.peers, args.client, settings, args.cache.resolve(), args.quick)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    not_compiled = compile_server(log)
    if not_compiled:
        log(f"The server's modules are not compiled: {not_compiled}")
    plot_missing = ensure_matplotlib(log)
    if plot_missing:
        log(f"No plot: {plot_missing}")
    report = run(options_from(args), log)
    plot = None
    if plot_missing is None:
        from .plot import plot
    else:
        report["plot"] = {"skipped": plot_missing}
    written = write(report, args.out, plot)
    print(written[0].read_text(), end="")
    log("Wrote " + ", ".join(str(path) for path in written))
    return 0
