"""`python -m blocks.setup email`: the prefect-email `EmailServerCredentials` block that sends the
QA e-mail (named by `email.credentials-block` in the config).

The password never goes on the command line (shell history, `ps`) or into YAML: it comes from the
LINAC_QA_SMTP_PASSWORD environment variable, else from a prompt when there is a terminal. Updating a
block without giving a password keeps the stored one.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefect_email import EmailServerCredentials

HELP = "create or update the EmailServerCredentials block that sends the QA e-mail"
PASSWORD_ENV = "LINAC_QA_SMTP_PASSWORD"
SECURITY = {"ssl": "SSL", "starttls": "STARTTLS", "none": "INSECURE"}  # ours -> prefect-email's SMTPType
DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="block name, as in email.credentials-block")
    p.add_argument("--server", required=True, metavar="HOST", help="SMTP server host name or address")
    p.add_argument("--port", type=int, metavar="N", help="default: 465 ssl, 587 starttls, 25 none")
    p.add_argument(
        "--security",
        required=True,
        choices=list(SECURITY),
        help="ssl (implicit TLS), starttls, or none (plain, for an internal relay)",
    )
    p.add_argument("--username", metavar="U", help="login; omit for a relay that takes mail without one")
    p.add_argument("--no-password", action="store_true", help="store no password (and drop a stored one)")
    p.add_argument(
        "--no-verify",
        action="store_true",
        help="do not verify the TLS certificate (self-signed internal relay)",
    )


def run(args: argparse.Namespace) -> int:
    from prefect_email import EmailServerCredentials

    try:
        existing = _existing(args.name)
    except Exception as exc:  # the Prefect API is unreachable
        print(f"error: cannot reach the Prefect API to read block {args.name!r}: {exc}", file=sys.stderr)
        return 1
    password = read_password(args, existing)
    if args.username and not password and not args.no_password:
        print(
            f"error: --username {args.username} needs a password: set {PASSWORD_ENV}, run this in a"
            " terminal to be asked for it, or give --no-password for a server that takes none;"
            f" block {args.name!r} was not saved",
            file=sys.stderr,
        )
        return 2
    block = EmailServerCredentials(
        smtp_server=args.server,
        smtp_port=args.port or DEFAULT_PORTS[args.security],
        smtp_type=SECURITY[args.security],
        username=args.username,
        password=password or "",
        verify=not args.no_verify,
    )
    try:
        block.save(args.name, overwrite=True)
    except Exception as exc:  # the Prefect API is unreachable or refuses
        print(f"error: cannot save block {args.name!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(describe(args.name, block, updated=existing is not None))
    return 0


def read_password(args: argparse.Namespace, existing: EmailServerCredentials | None) -> str:
    if args.no_password:
        return ""
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    stored = existing.password.get_secret_value() if existing is not None else ""
    if args.username and sys.stdin.isatty():
        hint = " (empty: keep the stored one)" if stored else ""
        return getpass.getpass(f"SMTP password for {args.username}{hint}: ") or stored
    return stored


def describe(name: str, block: EmailServerCredentials, *, updated: bool) -> str:
    smtp_type = getattr(block.smtp_type, "name", block.smtp_type)
    user = f"user {block.username!r}" if block.username else "no login"
    password = "password stored" if block.password.get_secret_value() else "no password"
    verb = "updated" if updated else "created"
    host = getattr(block.smtp_server, "value", block.smtp_server)
    where = f"{host}:{block.smtp_port} {smtp_type}"
    return f"{verb} EmailServerCredentials block {name!r}: {where}, {user}, {password}"


def _existing(name: str) -> EmailServerCredentials | None:
    from prefect_email import EmailServerCredentials

    try:
        return EmailServerCredentials.load(name)
    except ValueError:  # no such block yet
        return None
