"""The releases tests share the custody tests' clean cache (throttle counters live there) and the
generator tests' one-thread setting."""

from tests.clearinghouse.conftest import _empty_cache  # noqa: F401  (autouse fixture)
from tests.generators.conftest import _one_thread  # noqa: F401  (autouse fixture)
