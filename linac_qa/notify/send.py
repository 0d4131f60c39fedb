"""Delivering the ledger's pending messages through a prefect-email `EmailServerCredentials` block.

The block opens the connection (`get_server()`: SSL, STARTTLS or plain, logged in when it has a
username); we send the stored bytes with `sendmail`. Every error is turned into a sentence for the
person who has to fix it, and the block's password is scrubbed from it: it must never reach a log,
an artifact, the summary or an exception.
"""

from __future__ import annotations

import datetime as dt
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from linac_qa.checkpoints import checkpoint
from linac_qa.notify.outbox import Mail, Outbox
from linac_qa.notify.settings import EmailSettings
from linac_qa.records.ledger import Ledger

if TYPE_CHECKING:
    from prefect_email import EmailServerCredentials

SETUP_HINT = "python -m blocks.setup email --name {block} --server HOST --port N --security starttls|ssl|none"


class MailError(Exception):
    """A send that failed, worded for the person who has to fix it, without any secret."""


class Log(Protocol):
    def info(self, msg: str, *args: Any) -> None: ...

    def warning(self, msg: str, *args: Any) -> None: ...

    def error(self, msg: str, *args: Any) -> None: ...


@dataclass(frozen=True)
class Server:
    """Where messages go: how to connect, and how to word what went wrong."""

    connect: Callable[[], smtplib.SMTP]
    describe: Callable[[BaseException], str]


def send_pending(ledger: Ledger, email: EmailSettings, run_id: str, log: Log) -> int:
    """Every message due, oldest first, through the configured block. Returns how many were sent;
    raises MailError (each failed message marked in the ledger) when any is still pending. Opens no
    connection and loads no block when nothing is due."""
    if email.credentials_block is None:
        return 0
    due = take_due(ledger, email.resend_unknown_after)
    if not due:
        return 0
    try:
        server = block_server(email.credentials_block, email.timeout_seconds)
    except MailError as exc:
        outbox = Outbox(ledger)
        for mail in due:
            outbox.failed(mail.id, run_id, str(exc))
        raise
    return deliver_pending(ledger, server, run_id, log, email.resend_unknown_after)


def take_due(
    ledger: Ledger, resend_unknown_after: dt.timedelta, now: dt.datetime | None = None
) -> list[Mail]:
    """The messages to send now: every pending one, and each whose last attempt has no known
    outcome (its run died before the server's answer: it may have been delivered) once
    `resend_unknown_after` has passed since that attempt; those become pending again, the attempt
    remembered for the summary. Holding the directory's lock, no attempt is in progress elsewhere."""
    now = now or dt.datetime.now(dt.UTC)
    outbox = Outbox(ledger)
    due = []
    for mail in outbox.pending():
        if mail.status == "sending":
            began = dt.datetime.fromisoformat(mail.attempt_started or mail.created)
            if now - began < resend_unknown_after:
                continue
            outbox.outcome_unknown(mail.id)
        due.append(mail)
    return due


def deliver_pending(
    ledger: Ledger,
    server: Server,
    run_id: str,
    log: Log,
    resend_unknown_after: dt.timedelta = dt.timedelta(0),
) -> int:
    pending = take_due(ledger, resend_unknown_after)
    if not pending:
        return 0
    outbox = Outbox(ledger)
    try:
        smtp = server.connect()
    except (OSError, smtplib.SMTPException) as exc:
        _give_up(outbox, pending, run_id, server.describe(exc), log)
    sent, rejected = 0, []
    try:
        for index, mail in enumerate(pending):
            try:
                checkpoint("email")  # crash-safety tests: killed with the message pending in the ledger
                outbox.attempt(mail.id, run_id)
                refused = smtp.sendmail(mail.sender, list(mail.recipients), mail.message or b"")
                checkpoint("email-sent")  # crash-safety tests: the server has it, the ledger does not know
            except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
                # This message was refused; the connection is fine, so the others still go.
                error = server.describe(exc)
                outbox.failed(mail.id, run_id, error)
                log.error("e-mail %r refused: %s", mail.subject, error)
                rejected.append(error)
                continue
            except (OSError, smtplib.SMTPException) as exc:  # the connection is gone: the rest waits
                _give_up(outbox, pending[index:], run_id, server.describe(exc), log)
            except Exception as exc:  # not a stop (that leaves the outcome unknown): it was not sent
                outbox.failed(mail.id, run_id, f"{type(exc).__name__}: {exc}")
                raise
            outbox.sent(mail.id, run_id)
            sent += 1
            log.info("e-mail %s %r sent to %s", mail.kind, mail.subject, ", ".join(mail.recipients))
            if refused:
                log.warning("e-mail %r: the server refused %s", mail.subject, ", ".join(refused))
    finally:
        with suppress(OSError, smtplib.SMTPException):
            smtp.quit()
    if rejected:
        raise MailError(f"{len(rejected)} message(s) refused by the server: {rejected[0]}")
    return sent


def _give_up(outbox: Outbox, pending: list[Mail], run_id: str, error: str, log: Log) -> NoReturn:
    for mail in pending:
        outbox.failed(mail.id, run_id, error)
    log.error("e-mail not sent: %s", error)
    raise MailError(error)


# --------------------------------------------------------------------------- the block


def block_server(block_name: str, timeout: float) -> Server:
    credentials = load_block(block_name)
    host = credentials.smtp_server
    host = str(getattr(host, "value", host))
    smtp_type = credentials.smtp_type
    port = credentials.smtp_port or getattr(smtp_type, "value", None)
    where = f"{host}:{port}"
    secret = credentials.password.get_secret_value()

    def connect() -> smtplib.SMTP:
        with default_socket_timeout(timeout):
            return credentials.get_server()

    def describe(exc: BaseException) -> str:
        text = describe_error(exc, where=where, user=credentials.username, block=block_name, timeout=timeout)
        return scrub(text, secret)

    return Server(connect, describe)


def load_block(block_name: str) -> EmailServerCredentials:
    from prefect_email import EmailServerCredentials

    try:
        return EmailServerCredentials.load(block_name)
    except ValueError as exc:
        if "Unable to find" in str(exc):
            raise MailError(
                f"no EmailServerCredentials block named {block_name!r} on the Prefect server;"
                f" create it with {SETUP_HINT.format(block=block_name)}"
            ) from None
        raise MailError(f"cannot load the e-mail block {block_name!r}: {exc}") from None
    except Exception as exc:  # the Prefect API is down or refuses: the message waits for the next run
        raise MailError(f"cannot load the e-mail block {block_name!r}: {type(exc).__name__}: {exc}") from None


def describe_error(
    exc: BaseException, *, where: str, user: str | None, block: str, timeout: float | None = None
) -> str:
    fix = f"fix the block with {SETUP_HINT.format(block=block)}"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return (
            f"the SMTP server {where} refused the login of user {user!r} ({_smtp_reply(exc)});"
            f" check the user name and password of block {block!r}: {fix}"
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return f"the SMTP server {where} does not offer what the block asks for ({exc}); {fix}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = ", ".join(f"{a} ({_smtp_reply(r)})" for a, r in exc.recipients.items())
        return f"the SMTP server {where} refused every recipient: {refused}"
    if isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPDataError | smtplib.SMTPResponseException):
        return f"the SMTP server {where} refused the message ({_smtp_reply(exc)})"
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot connect to the SMTP server {where}: connection refused (is it running? right port?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot find the SMTP server {where}: {exc.strerror}"
    if isinstance(exc, TimeoutError):
        return f"the SMTP server {where} did not answer within {timeout or '?'} s"
    if isinstance(exc, ssl.SSLError):
        return f"TLS with the SMTP server {where} failed ({exc.reason or exc}); check --security and --port"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"the SMTP server {where} closed the connection ({exc or 'no reason given'})"
    if isinstance(exc, OSError):
        return f"cannot talk to the SMTP server {where}: {exc.strerror or exc}"
    return f"the SMTP server {where}: {type(exc).__name__}: {exc}"


def scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def _smtp_reply(exc: Any) -> str:
    code = getattr(exc, "smtp_code", None)
    if code is None and isinstance(exc, tuple):
        code, message = exc
    else:
        message = getattr(exc, "smtp_error", b"")
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return f"{code} {message}".strip()


# get_server() takes no timeout, and a relay that accepts the connection and then says nothing
# would hold the run forever. The default timeout applies to sockets created while it is set, so it
# is set only around the connect, under a lock; the SMTP socket keeps it for every later read.
_timeout_lock = threading.Lock()


@contextmanager
def default_socket_timeout(seconds: float) -> Iterator[None]:
    with _timeout_lock:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(seconds)
        try:
            yield
        finally:
            socket.setdefaulttimeout(previous)
