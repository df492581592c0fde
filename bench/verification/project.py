"""Every import of the project's modules (verification.core, accounts, releases, clearinghouse,
generators), each inside a function: ``load_engine()`` must see what ``import verification.core``
alone registers before any submodule is imported, so nothing here imports a project module when
this module is imported."""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
import sys
from types import SimpleNamespace
from typing import Any

import numpy as np


def schema_from_dict(raw: dict[str, Any]):
    from clearinghouse.schema import Schema

    return Schema.from_dict(raw)


def json_safe(value: Any, digits: int | None = None) -> Any:
    from clearinghouse.plain import json_safe as plain_json_safe

    return plain_json_safe(value, digits=digits)


# ------------------------------------------------------------------------------------- the engine
def load_engine() -> dict[str, Any]:
    """Import ``verification.core`` and then each of its submodules (a module that registers kinds is
    picked up even before the package imports it). Returns what was found."""
    import verification.core as core

    wired = sorted(core.KINDS)
    failed = {}
    for info in pkgutil.iter_modules(core.__path__):
        try:
            importlib.import_module(f"verification.core.{info.name}")
        except Exception as exc:  # noqa: BLE001 - a half-written module must not stop the bench
            failed[info.name] = f"{type(exc).__name__}: {exc}"
    from verification.core.hypothesis import KINDS as NAMES

    registered = [k for k in NAMES if k in core.KINDS] + sorted(set(core.KINDS) - set(NAMES))
    return {"registered": registered, "wired_by_package_import": wired, "import_failures": failed,
            "parsed_not_registered": [k for k in NAMES if k not in core.KINDS]}


def parse(spec: dict[str, Any], schema, epsilon: float):
    from verification.core import parse_hypothesis

    return parse_hypothesis({**spec, "epsilon": epsilon}, schema, max_epsilon=max(1000.0, epsilon))


def answer():
    """The engine's ``answer`` (bind it once per benchmark, before any timing)."""
    from verification.core import answer as engine_answer

    return engine_answer


def registered():
    """``verification.core.KINDS``: the kinds registered now."""
    from verification.core import KINDS

    return KINDS


def hypothesis_names() -> list[str]:
    from verification.core.hypothesis import KINDS as NAMES

    return list(NAMES)


def mechanisms():
    from verification.core import mechanisms as module

    return module


def life_table():
    from verification.core.kinds_survival import life_table as function

    return function



@contextlib.contextmanager
def noise_free():
    """Every discrete-Laplace draw is still made (so the random stream, block labels and randomized
    rounding are unchanged) but returns 0: ``answer()`` then gives the noise-free twin."""
    from verification.core import mechanisms

    original = mechanisms.discrete_laplace

    def zero(scale, rng, size=None):
        draw = original(scale, rng, size)
        return 0 if size is None else np.zeros_like(draw)

    patched = []
    for name, module in list(sys.modules.items()):
        if name.startswith("verification.core") and getattr(module, "discrete_laplace", None) is original:
            module.discrete_laplace = zero
            patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            module.discrete_laplace = original


def service_api() -> SimpleNamespace:
    """The service functions the HTTP benchmark calls (after ``django.setup()``)."""
    from accounts.budgets import allocation_set, policy_set
    from accounts.services import token_issue_for, user_create
    from clearinghouse.services.datasets import dataset_create
    from generators.services import _enqueue, run_create
    from releases.services import release_create, release_publish

    return SimpleNamespace(allocation_set=allocation_set, policy_set=policy_set, token_issue_for=token_issue_for,
                           user_create=user_create, dataset_create=dataset_create,
                           enqueue=_enqueue, run_create=run_create,
                           release_create=release_create, release_publish=release_publish)
