"""Every module of the three packages imports. mypy runs with `ignore_missing_imports` (several
dependencies ship no type stubs), which also hides an import of one of our own modules that no
longer exists; a module no test happens to import would then first fail in a user's pod."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import xrouter_dev
import xrouter_operator
import xrouter_router

MODULES = sorted(
    info.name
    for package in (xrouter_router, xrouter_operator, xrouter_dev)
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
    # Importing __main__ runs the program; what it imports is imported here on its own.
    if not info.name.endswith(".__main__")
)


def test_the_walk_finds_the_subpackages() -> None:
    assert "xrouter_router.ledger.meter" in MODULES and "xrouter_router.providers.bedrock" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    importlib.import_module(name)
