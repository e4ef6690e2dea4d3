"""``python -m modelserver.model_archiver``: the same as the ``model-archiver`` command."""

from .cli import main

raise SystemExit(main())
