"""The container image's entry point (``python -m modelserver.container [ARGS]``).

A container's main process must stay in the foreground, and the same image must start from ``docker run IMAGE``,
from a Kubernetes Deployment and from KServe's TorchServe ``ServingRuntime``, whose ``args`` are
``torchserve --start --model-store=... --ts-config=...`` (TorchServe's image runs them through a shell script and
a second process). Here they become one foreground ``modelserver`` in this very process, so SIGTERM from the
kubelet reaches the server and its drain.
"""

from __future__ import annotations

import os
import sys

DEFAULT_CONFIG = "/home/model-server/config.properties"
"""The image's own config (inference on all interfaces, management and metrics on localhost); mount over it."""

SERVER_NAMES = frozenset({"torchserve", "modelserver"})
ONE_SHOT = frozenset({"--stop", "--version", "-v", "--help", "-h"})


def server_args(argv: list[str]) -> list[str] | None:
    """The ``modelserver`` arguments that ``argv`` asks for, or None when ``argv`` is another command to run.

    - nothing, or ``serve`` (TorchServe's image): start with :data:`DEFAULT_CONFIG`;
    - ``torchserve ...`` / ``modelserver ...`` (KServe's runtime) or flags alone: those flags;
    - anything else (``bash``, ``model-archiver ...``): None, the caller runs it as it is.

    ``--foreground`` is added to a start: ``--start`` alone would detach and the container would exit.
    """
    args = list(argv)
    if args and args[0] in SERVER_NAMES:
        args = args[1:]
    elif args and args[0] == "serve":
        args = []
    elif args and not args[0].startswith("-"):
        return None
    if not args:
        args = ["--start", "--ts-config", DEFAULT_CONFIG]
    if ONE_SHOT.isdisjoint(args) and "--foreground" not in args:
        args.append("--foreground")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = server_args(argv)
    if args is None:
        os.execvp(argv[0], argv)  # replaces this process: the command is the container's main process
    from .cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
