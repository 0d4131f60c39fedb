"""`python -m blocks.setup SUBCOMMAND ...`: create or update the Prefect blocks the project uses.

Each subcommand is a module with `HELP`, `add_arguments(parser)` and `run(args) -> int`; adding
one is adding its module to SUBCOMMANDS. Prefect is imported by `run`, not at parse time, so
`--help` and usage errors are instant.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from blocks import email_server, machine_config_command, register

SUBCOMMANDS: dict[str, ModuleType] = {
    "email": email_server,
    "register": register,
    "machine-config": machine_config_command,
}


EPILOG = """exit status:
  0  saved (or registered)
  1  the Prefect API (PREFECT_API_URL) could not be reached or refused
  2  bad usage or configuration: nothing was saved

examples:
  python -m blocks.setup register
  LINAC_QA_SMTP_PASSWORD=... linac-qa setup email --name clinic-smtp --server smtp.clinic.org \\
      --security starttls --username qa-robot"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m blocks.setup",
        description=__doc__.splitlines()[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = p.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for name, module in SUBCOMMANDS.items():
        sub = commands.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(SUBCOMMANDS[args.command].run(args))


if __name__ == "__main__":
    sys.exit(main())
