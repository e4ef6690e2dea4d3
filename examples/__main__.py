"""``python -m examples [--out DIR] [--work DIR]``: train the examples and write their ``.mar`` files."""

from examples.build import main

raise SystemExit(main())
