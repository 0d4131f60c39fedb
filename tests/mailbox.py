"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, keeping every message it is given and
counting every connection."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.conftest import free_port


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
