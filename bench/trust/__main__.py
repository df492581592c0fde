"""``python -m bench.trust``: see the package's docstring (``--help``)."""

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("PYTHONHASHSEED", "0")

from bench.trust.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
