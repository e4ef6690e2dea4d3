"""``python -m modelserver.ts_path``: the directory that makes TorchServe's ``ts.*`` importable outside the server.

Handlers' own unit tests import ``ts.torch_handler.base_handler``, ``ts.context``, ``ts.utils.util`` or TorchServe's
test helpers ``ts.launcher``. Without TorchServe installed, put the printed directory (our ``ts`` shim) on
``PYTHONPATH``::

    PYTHONPATH="$(python -m modelserver.ts_path)${PYTHONPATH:+:$PYTHONPATH}" pytest test/

It never shadows a real TorchServe: if another ``ts`` package is importable, importing the shim loads that one
instead (``workers/ts_shim/ts/__init__.py``), so installing ``torchserve`` later needs no change. ``--which``
prints which ``ts`` package ``import ts`` loads with the shim on the path: ``shim <dir>`` or ``other <file>``.
"""

from __future__ import annotations

import argparse
import sys

from workers.ts_compat import SHIM_DIR, other_ts_spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelserver.ts_path", description=__doc__.split("\n\n")[0])
    parser.add_argument("--which", action="store_true", help="print which ts package 'import ts' would load")
    args = parser.parse_args(argv)
    if not args.which:
        print(SHIM_DIR)
        return 0
    other = other_ts_spec()
    print(f"shim {SHIM_DIR / 'ts'}" if other is None else f"other {other.origin}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
