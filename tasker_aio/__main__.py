"""``python -m tasker_aio``: the command line (``demo``); see ``--help``."""

from __future__ import annotations

from ._demo import main

if __name__ == "__main__":
    raise SystemExit(main())
