"""``python -m bench.verification``: see the package's docstring (``--help``)."""

import os

from bench.verification.cli import main

if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
