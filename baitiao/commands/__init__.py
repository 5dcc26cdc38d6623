"""Command groups beyond the core: one module per area."""
from __future__ import annotations

import click

GROUPS: list[click.Command] = []
