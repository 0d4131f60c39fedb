"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, keeping every message it is given and
counting every connection; and what the unit and end-to-end e-mail tests share: the clinic's
addresses, a client of that server, the e-mail block as a user creates it, a message's parts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from linac_qa.notify.send import Server, describe_error
from tests.conftest import ROOT, free_port

SENDER = "Linac QA <qa-robot@clinic.test>"
RECIPIENTS = ["physics@clinic.test", "Dr. Größe <grosse@clinic.test>"]
GOOD_PASSWORD = "right-horse-battery-7"
WRONG_PASSWORD = "wr0ng-Pa55-staple-42"
NON_ASCII_PF = "RI.QA.PF_Größe Ω.dcm"  # its report: "RI.QA.PF_Größe Ω_analysis.pdf"
SUBJECT = "{unit} QA: {failed} failed, {errors} errors, {passed} passed, {ignored} ignored"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class Mailbox(Controller):
    """aiosmtpd on 127.0.0.1: keeps every message and counts every connection."""

    def __init__(
        self,
        port: int | None = None,
        password: str | None = None,
        after_keeping: Callable[[Received], None] | None = None,
    ):
        """`after_keeping`: called with each message once it is kept, before the server answers
        (a fault: e.g. kill the sender in the moment between the server's acceptance and its reply)."""
        self.received: list[Received] = []
        self.connections = 0
        auth: dict[str, Any] = {}
        if password is not None:  # AUTH over plain loopback: auth_require_tls=False
            auth = {"authenticator": _only(password), "auth_required": True, "auth_require_tls": False}
        super().__init__(
            _Keep(self.received, after_keeping), hostname="127.0.0.1", port=port or free_port(), **auth
        )

    def start(self) -> None:
        super().start()
        self.connections = 0  # start() connects once to check the server is up

    def factory(self) -> SMTP:  # called once per connection
        self.connections += 1
        return super().factory()

    def mentioning(self, text: str) -> int:
        """How many messages name `text` in their decoded text or HTML body."""
        bodies = [
            "\n".join(str(p.get_content()) for p in r.message.walk() if p.get_content_maintype() == "text")
            for r in self.received
        ]
        return sum(text in body for body in bodies)


class _Keep:
    def __init__(self, received: list[Received], after_keeping: Callable[[Received], None] | None):
        self.received = received
        self.after_keeping = after_keeping

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        kept = Received(str(envelope.mail_from), list(envelope.rcpt_tos), message)
        self.received.append(kept)
        if self.after_keeping is not None:
            self.after_keeping(kept)
        return "250 OK"


def _only(password: str) -> Any:
    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == b"qa" and data.password == password.encode()
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    return authenticator


@contextmanager
def running(box: Mailbox) -> Iterator[Mailbox]:
    box.start()
    try:
        yield box
    finally:
        box.stop()


def smtp_to(box_port: int) -> Server:
    import smtplib

    return Server(
        connect=lambda: smtplib.SMTP("127.0.0.1", box_port, timeout=10),
        describe=lambda exc: describe_error(exc, where=f"127.0.0.1:{box_port}", user=None, block="test"),
    )


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str, *args: Any) -> None:
        self.lines.append(msg % args)

    warning = error = info


def parts(message: EmailMessage) -> tuple[str, str, dict[str, bytes]]:
    """Its plain text, its HTML and its attachments by file name."""
    alternative = next(p for p in message.walk() if p.get_content_type() == "multipart/alternative")
    # The HTML alone, or in a multipart/related with the images it shows (the record's trend charts).
    shown = [p.get_content_type() for p in alternative.iter_parts()]
    assert shown in (["text/plain", "text/html"], ["text/plain", "multipart/related"]), shown
    text = alternative.get_body(("plain",))
    page = alternative.get_body(("html",))
    assert text is not None and page is not None
    attachments = {str(a.get_filename()): a.get_content() for a in message.iter_attachments()}
    return text.get_content(), page.get_content(), attachments


def addresses(message: EmailMessage, header: str) -> list[str]:
    return [a.addr_spec for a in message[header].addresses]


def setup_block(api: str, name: str, port: int, *, username: str | None = None, password: str = "") -> str:
    """`python -m blocks.setup email` as a user runs it, the password in the environment."""
    args = ["--name", name, "--server", "127.0.0.1", "--port", str(port), "--security", "none"]
    if username:
        args += ["--username", username]
    env = {**os.environ, "PREFECT_API_URL": api, "LINAC_QA_SMTP_PASSWORD": password}
    proc = subprocess.run(
        [sys.executable, "-m", "blocks.setup", "email", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    if password:
        assert password not in proc.stdout + proc.stderr
    return proc.stdout
