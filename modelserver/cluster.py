"""One frontend process among several (``frontend_processes`` > 1): what it asks the others, and what it answers
them, over its control channel (:mod:`modelserver.control`; the design is in docs/scaling.md).

What keeps N processes one server to a user:

* models: a management call's change is applied by every other frontend before the call answers
  (:meth:`Cluster.publish`, :mod:`modelserver.model_sync`); a restarted frontend takes the models of a running one;
* ``/ping`` and ``/v2/health/ready``: healthy (ready) only when every frontend says so; one that does not answer
  within :data:`CHECK_TIMEOUT` seconds (dead, restarting, stuck) is not;
* ``/metrics`` and the per-version summaries: every frontend's numbers, added up (:mod:`modelserver.metrics.merge`);
* token authorization: one set of keys; a key regenerated through one frontend reaches the others before
  ``/token`` answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import model_sync
from .control import ControlLink
from .dialects.management_describe import describe_workers
from .errors import ServeError
from .frontend_plan import FrontendRole
from .metrics.merge import export, export_summaries

if TYPE_CHECKING:
    from .app import ModelServer

logger = logging.getLogger("modelserver.cluster")

APPLY_TIMEOUT = 300.0
"""A change waits this long at most for the other frontends (their workers may be loading a large model)."""
CHECK_TIMEOUT = 2.0
NUMBERS_TIMEOUT = 5.0
STATE_TIMEOUT = 30.0


class Cluster:
    """The other frontends, as ``server`` sees them: it becomes the server's ``peers`` and answers their asks."""

    def __init__(self, server: ModelServer, link: ControlLink, role: FrontendRole) -> None:
        self.server = server
        self.link = link
        self.role = role
        self._known: model_sync.State = {"versions": {}, "defaults": {}}
        self._applying = asyncio.Lock()
        self._started = False
        link.handlers.update(
            {
                "apply": self._apply,
                "health": self._health,
                "metrics": self._metrics,
                "summaries": self._summaries,
                "state": self._state,
                "keys": self._keys,
                "workers": self._workers,
            }
        )
        server.peers = self
        server.registry.peers = self
        server.metrics.peers = self._numbers
        if server.auth is not None:
            server.auth.changed = self._publish_keys

    # -- what the server calls (app.Peers) -------------------------------------------------------------------------

    async def join(self, load_startup_models: Callable[[], None]) -> None:
        """The startup models; or, started again after dying, the models of a running frontend (the startup ones if
        none answers). Changes the others send meanwhile wait until this is done."""
        async with self._applying:
            if not (self.role.restarted and await self._take_state()):
                load_startup_models()
            self._known = model_sync.registry_state(self.server.registry)

    async def publish(self, wait: bool) -> None:
        current = model_sync.registry_state(self.server.registry)
        change = model_sync.diff(self._known, current)
        self._known = current
        if change is None:
            return
        answers = await self.link.call("apply", {"change": change, "wait": wait}, APPLY_TIMEOUT)
        for index, text in sorted(answers.errors.items()):
            logger.error("Frontend %d could not apply a model change: %s", index, text)
        for index, errors in sorted(answers.values.items()):
            for text in errors:
                logger.error("Frontend %d could not apply a model change: %s", index, text)
        if answers.missing:
            logger.info(
                "Frontend(s) %s did not confirm a model change (not running, or still busy with it after %d s)",
                ", ".join(map(str, answers.missing)),
                APPLY_TIMEOUT,
            )

    def started(self) -> None:
        self._started = True
        self.link.send({"kind": "started"})

    # -- hooks of the registry, the metrics and the keys -------------------------------------------------------------

    async def all_are(self, what: str) -> bool:
        """Whether every other frontend answers that it is ``healthy`` (or ``ready``)."""
        answers = await self.link.call("health", None, CHECK_TIMEOUT)
        values = answers.values
        return len(values) == self.role.count - 1 and all(bool(value.get(what)) for value in values.values())

    async def workers(self, name: str, versions: list[str]) -> list[dict[str, Any]]:
        """Each other frontend's workers of these versions (a describe call lists every frontend's)."""
        answers = await self.link.call("workers", {"name": name, "versions": versions}, CHECK_TIMEOUT)
        return [answers.values[index] for index in sorted(answers.values)]

    async def _numbers(self, op: str) -> list[Any]:
        """Every other frontend's ``metrics`` or ``summaries``; one that does not answer is left out."""
        answers = await self.link.call(op, None, NUMBERS_TIMEOUT)
        if answers.missing or answers.errors:
            logger.warning("Frontend(s) %s left out of %s", sorted({*answers.missing, *answers.errors}), op)
        return [answers.values[index] for index in sorted(answers.values)]

    async def _publish_keys(self) -> None:
        assert self.server.auth is not None
        answers = await self.link.call("keys", self.server.auth.shared(), CHECK_TIMEOUT)
        if answers.missing or answers.errors:
            logger.error("Frontend(s) %s did not take the new key", sorted({*answers.missing, *answers.errors}))

    # -- what the others ask ---------------------------------------------------------------------------------------

    async def _apply(self, args: Mapping[str, Any]) -> list[str]:
        change = args["change"]
        async with self._applying:
            errors = await model_sync.apply(self.server, change, bool(args.get("wait")))
            self._known = model_sync.absorb(self._known, change, model_sync.registry_state(self.server.registry))
            self.server.save_snapshot()
        return errors

    async def _health(self, args: Any) -> dict[str, bool]:
        registry = self.server.registry
        return {"healthy": self._started and registry.healthy(), "ready": self._started and registry.ready()}

    async def _workers(self, args: Mapping[str, Any]) -> dict[str, Any]:
        found = {}
        for key in args["versions"]:
            try:
                version = self.server.registry.resolve(args["name"], key)
            except ServeError:
                continue
            found[key] = {
                "workers": describe_workers(version),
                "remainingCapacity": version.queue.remaining_capacity,
                "pendingRequests": version.queue.pending,
            }
        return found

    async def _metrics(self, args: Any) -> list[Any]:
        return export(self.server.metrics.registry.collect())

    async def _summaries(self, args: Any) -> list[Any]:
        return export_summaries(self.server.metrics.summaries())

    async def _state(self, args: Any) -> dict[str, Any]:
        """Everything a restarted frontend takes: after the changes this one is applying (asked before)."""
        if not self._started:
            return {"started": False}
        async with self._applying:
            auth = self.server.auth
            return {
                "started": True,
                "models": model_sync.full(model_sync.registry_state(self.server.registry)),
                "auth": None if auth is None else auth.shared(),
            }

    async def _keys(self, args: Mapping[str, Any]) -> None:
        if self.server.auth is not None:
            self.server.auth.adopt(args)

    async def _take_state(self) -> bool:
        answers = await self.link.call("state", None, STATE_TIMEOUT)
        running = sorted(index for index, value in answers.values.items() if value.get("started"))
        if not running:
            logger.warning("No running frontend to take the models from: loading the startup models")
            return False
        state = answers.values[running[0]]
        if state.get("auth") is not None and self.server.auth is not None:
            self.server.auth.adopt(state["auth"])
        for text in await model_sync.apply(self.server, state["models"]):
            logger.error("Could not take a model from frontend %d: %s", running[0], text)
        logger.info("Took %d model version(s) from frontend %d", len(state["models"]["upsert"]), running[0])
        self.server.save_snapshot()
        return True
