"""`python -m blocks.setup register`: register the block types the project uses on the Prefect
server, so that they can be created and edited in its UI (Blocks, +). Idempotent."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefect.blocks.core import Block

HELP = "register the project's block types (machine-config, email-server-credentials) on the server"


def block_types() -> list[type[Block]]:
    """What the project's configs and deployments name: machine configs and the e-mail server."""
    from prefect_email import EmailServerCredentials

    from blocks.machine_config import MachineConfig

    return [MachineConfig, EmailServerCredentials]


def register_block_types() -> list[str]:
    """Register every block type (idempotent); returns their slugs."""
    slugs = []
    for block_type in block_types():
        block_type.register_type_and_schema()
        slugs.append(block_type.get_block_type_slug())
    return slugs


def add_arguments(p: argparse.ArgumentParser) -> None:
    """No options: the server is PREFECT_API_URL."""


def run(args: argparse.Namespace) -> int:
    try:
        slugs = register_block_types()
    except Exception as exc:  # the Prefect API is unreachable or refuses
        print(f"error: cannot register the block types: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for slug in slugs:
        print(f"registered block type {slug}")
    return 0
