"""`python -m blocks.setup machine-config --name NAME --file CONFIG.yml`: keep a machine's config
on the Prefect server as a machine-config block, for a deployment to name (`config-block:` in
deployments/machines.yml). The file is checked first; running it again updates the block."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from blocks.machine_config import MachineConfig

HELP = "create or update a machine-config block from a config file (checked before it is saved)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--name", required=True, help="block name, as in config-block: of deployments/machines.yml"
    )
    p.add_argument(
        "--file", required=True, metavar="CONFIG.yml", help="the machine's config (watcher_config.yml format)"
    )
    p.add_argument("--description", help="shown with the block in the UI, e.g. the machine and its physicist")


def save_machine_config(
    name: str, file: str | os.PathLike[str], description: str | None = None
) -> MachineConfig:
    """Store a config file's YAML as the machine-config block `name` (created or replaced)."""
    from blocks.machine_config import MachineConfig
    from linac_qa.config import load_settings

    path = Path(file)
    text = path.read_text(encoding="utf-8")
    # Checked as the block will be loaded (text with no folder of its own, so relative paths are
    # refused now rather than at 02:00), with mistakes named by the file's name, line and key.
    load_settings(text=text, source=str(path))
    block = MachineConfig(yaml=text, description=description)
    block.save(name, overwrite=True)
    return block


def run(args: argparse.Namespace) -> int:
    from linac_qa.config import ConfigError

    try:
        save_machine_config(args.name, args.file, args.description)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the Prefect API is unreachable or refuses
        print(f"error: cannot save block {args.name!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"saved machine-config block {args.name!r} from {args.file}")
    return 0
