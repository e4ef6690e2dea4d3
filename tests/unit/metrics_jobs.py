"""Real jobs for the metrics tests, which call a version's metrics directly, with no server and no running loop."""

from __future__ import annotations

import asyncio
import atexit

from modelserver.types import Job

_LOOP = asyncio.new_event_loop()
"""A job's future needs a loop; this one is never run."""
atexit.register(_LOOP.close)


def new_job() -> Job:
    return Job("metrics-test", {}, [], loop=_LOOP)
