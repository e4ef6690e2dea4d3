"""The run: prepare every target once, then for each scenario start each target that supports it, measure its
points, and stop it. Peers (TorchServe, Mosec, KServe) are imported only when asked for, and prepared (installed)
only when they run one of the selected scenarios; one that cannot run here is skipped with its reason, recorded in
the report. Every process started is stopped by PID in a ``finally``."""

from __future__ import annotations

import datetime
import functools
import importlib
import tempfile
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .clients import Client, choose_client, choose_grpc_client
from .install import ensure_digits_archive
from .machine import git_state, machine_info, package_versions
from .measure import Settings, load_point, paired_load_point, start_warmup, stream_point
from .procs import Managed, Pinning, choose_pinning, client_affinity, rss_mb
from .report import failed_requests
from .scenarios import Scenario
from .targets.bare import BarePeer
from .targets.base import Log, Peer, Target, Unavailable
from .targets.ceilings import GrpcEchoPeer, HopEchoPeer, NativeEchoPeer, RawEchoPeer, RawHopPeer
from .targets.modelserver import ModelServerPeer
from .targets.modelserver_script import ModelServerScriptPeer

OPTIONAL_PEERS = {
    "torchserve": ("benchmarks.targets.torchserve", "TorchServePeer"),
    "mosec": ("benchmarks.targets.mosec", "MosecPeer"),
    "kserve": ("benchmarks.targets.kserve", "KServePeer"),
}
NOT_NEEDED = "runs none of the selected scenarios"
UNPINNED = Pinning((), None, "not pinned: the frontends-* scenarios spread the server over every core")
LOG_TAIL_CHARS = 5000


@dataclass(frozen=True)
class RunOptions:
    scenarios: tuple[Scenario, ...]
    peers: tuple[str, ...]
    """Names from :data:`OPTIONAL_PEERS`; this server (both ways of starting it) and the ceilings always run."""
    client: str
    settings: Settings
    cache: Path
    quick: bool = False


def load_peer(name: str) -> Peer:
    """Import an optional peer; a missing module or class makes it unavailable, not the run fail."""
    module_name, class_name = OPTIONAL_PEERS[name]
    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name)()
    except (ImportError, AttributeError) as err:
        raise Unavailable(f"cannot load {module_name}.{class_name}: {type(err).__name__}: {err}") from err


def may_run(peer: Peer, scenario: Scenario) -> bool:
    """Whether ``peer`` may run ``scenario``, asked before the run builds any archive: a scenario served from an
    archive (digits) counts as possible, since its archive may only be built when the scenario comes."""
    return scenario.handler_spec.archive is not None or peer.unsupported(scenario) is None


def scenario_blocker(scenario: Scenario, log: Log, grpc_client: Client | str | None = None) -> str | None:
    """Why no target can run ``scenario`` here (its inputs cannot be made, or a gRPC scenario has no load
    generator: ``grpc_client`` is then the reason), or None."""
    if scenario.is_grpc and isinstance(grpc_client, str):
        return f"no gRPC load generator: {grpc_client}"
    if scenario.handler == "digits":
        reason = ensure_digits_archive(log)
        return None if reason is None else f"digits model unavailable: {reason}"
    return None


class Run:
    """The state of one run: the report being filled in, and what every target needs."""

    def __init__(self, options: RunOptions, log: Log) -> None:
        self.options, self.log = options, log
        self.pinning: Pinning = choose_pinning()
        self.client: Client = choose_client(options.client, log)
        self.grpc_client: Client | str | None = None
        """h2load for the gRPC scenarios (or why there is none); None when no gRPC scenario was selected."""
        if any(scenario.is_grpc for scenario in options.scenarios):
            self.grpc_client = choose_grpc_client(log)
        self.report: dict[str, Any] = {
            "generated_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "machine": machine_info(),
            "packages": package_versions(),
            "git": git_state(),
            "pinning": self.pinning.note,
            "client": {"name": self.client.name, "description": self.client.description, "note": self.client.note},
            "grpc_client": _client_entry(self.grpc_client),
            "settings": {
                **asdict(options.settings),
                "scenarios": [s.name for s in options.scenarios],
                "peers": list(options.peers),
                "quick": options.quick,
            },
            "targets": {},
            "skipped": [],
            "starts": [],
            "points": [],
        }

    def skip(self, target: str, scenario: str | None, reason: str) -> None:
        self.log(f"  skip {target}{f' / {scenario}' if scenario else ''}: {reason}")
        self.report["skipped"].append({"target": target, "scenario": scenario, "reason": reason})

    def prepared_peers(self) -> list[Peer]:
        """This server (from a model store, and as a KServe script), the asked-for peers and the ceilings, each
        prepared once; the unavailable ones, and those that run none of the selected scenarios, left out."""
        ready: list[Peer] = []
        candidates: list[tuple[str, Any]] = [("modelserver", ModelServerPeer)]
        candidates.append(("modelserver-script", ModelServerScriptPeer))
        candidates += [(name, lambda name=name: load_peer(name)) for name in self.options.peers]
        candidates += [("bare aiohttp", BarePeer), ("raw httptools", RawEchoPeer), ("aiohttp hop", HopEchoPeer)]
        candidates.append(("raw hop", RawHopPeer))
        candidates += [("grpc.aio echo", GrpcEchoPeer), ("native h2 echo", NativeEchoPeer)]
        for name, make in candidates:
            try:
                peer = make()
                if not any(may_run(peer, scenario) for scenario in self.options.scenarios):
                    self.log(f"Not preparing {peer.name}: it {NOT_NEEDED}")
                    self.report["targets"][peer.name] = {"not_needed": NOT_NEEDED}
                    continue
                self.log(f"Preparing {peer.name}")
                facts = peer.prepare(self.options.cache, self.log)
            except Exception as err:  # Unavailable, or a peer's own failure: either way it is left out
                reason = str(err) if isinstance(err, Unavailable) else f"failed: {type(err).__name__}: {err}"
                self.report["targets"][name] = {"unavailable": reason}
                self.skip(name, None, reason)
                continue
            self.report["targets"][peer.name] = {"prepared": facts}
            ready.append(peer)
        return ready

    def measure(self, target: Target, scenario: Scenario) -> list[dict[str, Any]]:
        """The scenario's points, each added to the report as soon as it is measured (a later failure keeps it)."""
        settings = self.options.settings
        client = self.grpc_client if scenario.is_grpc else self.client
        assert isinstance(client, Client), "a gRPC scenario without h2load is blocked before it starts"
        if scenario.kind == "stream":
            jobs = [functools.partial(stream_point, target, scenario, settings)]
        else:
            jobs = [
                functools.partial(load_point, target, scenario, client, concurrency, settings)
                for concurrency in scenario.concurrency
            ]
        points = []
        with client_affinity(None if scenario.unpinned else self.pinning.client_cpus):
            if scenario.kind == "load":
                start_warmup(target, scenario, client, settings)
            for job in jobs:
                points.append(job())
                self.report["points"].append(points[-1])
                self.log(f"  {summary_line(points[-1])}")
        return points

    def run_paired(self, peer: Peer, scenario: Scenario, base: Scenario, workdir: Path) -> None:
        """``scenario`` beside a second server of the same peer on ``base``, both started, measured in alternating
        rounds (:func:`~benchmarks.measure.paired_load_point`)."""
        reason = peer.unsupported(scenario)
        if reason is not None:
            self.skip(peer.name, scenario.name, reason)
            return
        started: list[Managed] = []
        (workdir / "base").mkdir(parents=True)
        (workdir / "paired").mkdir(parents=True)
        try:
            base_target = peer.start(base, workdir / "base", self.pinning, started, self.log)
            target = peer.start(scenario, workdir / "paired", self.pinning, started, self.log)
            self.log(f"  {peer.name}: pids {target.pids}, beside {base.name}'s {base_target.pids}")
            with client_affinity(self.pinning.client_cpus):
                start_warmup(base_target, base, self.client, self.options.settings)
                start_warmup(target, scenario, self.client, self.options.settings)
                for concurrency in scenario.concurrency:
                    point = paired_load_point(
                        target, scenario, base_target, base, self.client, concurrency, self.options.settings
                    )
                    self.report["points"].append(point)
                    paired = point["paired"]
                    self.log(
                        f"  {summary_line(point)}; in rounds with {base.name}: req/s x{paired['requests_per_s_ratio']}"
                        f", p99 x{paired['p99_ratio']}"
                    )
            self.report["starts"].append(
                {
                    "target": peer.name,
                    "scenario": scenario.name,
                    "start_s": target.start_s,
                    "pids": target.pids,
                    "rss_after_load_mb": {role: rss_mb(pid) for role, pid in target.pids.items()},
                    **target.extra,
                }
            )
        except Unavailable as err:
            self.skip(peer.name, scenario.name, str(err))
        except Exception as err:  # one target failing must not lose the rest of a long run
            self.log(traceback.format_exc())
            self.skip(peer.name, scenario.name, f"failed: {type(err).__name__}: {str(err).splitlines()[0]}")
        finally:
            for managed in reversed(started):
                managed.stop()

    def run_target(self, peer: Peer, scenario: Scenario, workdir: Path) -> None:
        reason = peer.unsupported(scenario)
        if reason is not None:
            self.skip(peer.name, scenario.name, reason)
            return
        workdir.mkdir(parents=True)
        started: list[Managed] = []
        pinning = UNPINNED if scenario.unpinned else self.pinning
        try:
            target = peer.start(scenario, workdir, pinning, started, self.log)
            self.log(f"  {peer.name}: answering {target.start_s or 0:.2f} s after spawn; pids {target.pids}")
            points = self.measure(target, scenario)
            start = {
                "target": peer.name,
                "scenario": scenario.name,
                "start_s": target.start_s,
                "pids": target.pids,
                "rss_after_load_mb": {role: rss_mb(pid) for role, pid in target.pids.items()},
                **target.extra,
            }
            if any(failed_requests(point) for point in points):
                start["log_tail"] = target.log.read_text(errors="replace")[-LOG_TAIL_CHARS:]
            self.report["starts"].append(start)
        except Unavailable as err:
            self.skip(peer.name, scenario.name, str(err))
        except Exception as err:  # one target failing must not lose the rest of a long run
            self.log(traceback.format_exc())
            tail = started[0].log_tail(LOG_TAIL_CHARS) if started else ""
            self.skip(peer.name, scenario.name, f"failed: {type(err).__name__}: {str(err).splitlines()[0]}")
            self.report["skipped"][-1]["log_tail"] = tail
        finally:
            for managed in reversed(started):
                managed.stop()

    def run(self) -> dict[str, Any]:
        self.log(f"Pinning: {self.pinning.note}")
        self.log(f"Load generator: {self.client.description} ({self.client.note})")
        self.options.cache.mkdir(parents=True, exist_ok=True)
        peers = self.prepared_peers()
        selected = {scenario.name for scenario in self.options.scenarios}
        paired = [s for s in self.options.scenarios if s.paired_with in selected]
        with tempfile.TemporaryDirectory(prefix="modelserver-bench-") as tmp:
            for scenario in self.options.scenarios:
                if scenario not in paired:
                    companions = [s for s in paired if s.paired_with == scenario.name]
                    self.run_scenario(scenario, peers, Path(tmp), companions)
        return self.report

    def run_scenario(self, scenario: Scenario, peers: list[Peer], tmp: Path, companions: list[Scenario]) -> None:
        """Every peer on ``scenario``. The ``companions`` (scenarios paired with this one) run right after this
        server's point, this server only, so the ratio between the two points is not the machine's drift over the
        minutes the other targets take."""
        self.log(f"Scenario {scenario.name}: {scenario.title}")
        blocker = scenario_blocker(scenario, self.log, self.grpc_client)
        for index, peer in enumerate(peers):
            if blocker is not None:
                self.skip(peer.name, scenario.name, blocker)
                continue
            self.run_target(peer, scenario, tmp / scenario.name / f"{index}-{peer.name[:20]}")
            if companions and isinstance(peer, ModelServerPeer):
                for companion in companions:
                    self.log(f"Scenario {companion.name} (in rounds with {scenario.name}): {companion.title}")
                    self.run_paired(peer, companion, scenario, tmp / companion.name / f"{index}-{peer.name[:20]}")
                    for other in peers:
                        reason = other.unsupported(companion)
                        if other is not peer and reason is not None:
                            self.skip(other.name, companion.name, reason)
                if index + 1 < len(peers):
                    self.log(f"Scenario {scenario.name}, the other targets")


def _client_entry(client: Client | str | None) -> dict[str, str] | None:
    if client is None:
        return None
    if isinstance(client, str):
        return {"name": "none", "description": "no gRPC load generator", "note": client}
    return {"name": client.name, "description": client.description, "note": client.note}


def summary_line(point: dict[str, Any]) -> str:
    if point["kind"] == "stream":
        first, delay = point["first_piece_ms"], point["first_piece_delay_ms"]
        return (
            f"{point['target']:<12} stream: first piece {first['p50']} ms, handler-to-client {delay['p50']} ms "
            f"(p99 {delay['p99']}), pieces apart {point['separate_share']}, errors {point['errors']}"
        )
    cpu = point["cpu_us_per_request"]
    return (
        f"{point['target']:<12} c={point['concurrency']:<3} {point['requests_per_s']:>9.1f} req/s  "
        f"p50 {point['p50_ms']} ms  p99 {point['p99_ms']} ms  errors {failed_requests(point)}  "
        f"CPU us/req {cpu}  other CPU {point['other_cpu_pct']:.0f}%"
    )


def run(options: RunOptions, log: Log) -> dict[str, Any]:
    return Run(options, log).run()
