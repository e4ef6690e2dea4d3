"""``python -m modelserver`` is the ``modelserver`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
