"""A roll with a misspelled hook implementation: loading it must fail at start, naming it."""

from __future__ import annotations

from provisioner.hookspecs import hookimpl
from provisioner.specs import CommandRef


@hookimpl
def register_comands() -> list[CommandRef]:  # misspelled on purpose
    return []
