"""The `email:` section of the config. Credentials are never here: they live in a prefect-email
`EmailServerCredentials` block, named by `credentials-block`."""

from __future__ import annotations

import datetime as dt
import string
from email.utils import getaddresses
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from linac_qa.sections import Section

# What a subject template may use; each is a count of this run's results, except `unit` and
# `counts`, the main counts in words: "2 failed, 1 error, 5 passed" (and "1 not judged" when any).
SUBJECT_FIELDS = ("unit", "counts", "failed", "passed", "not_judged", "errors", "ignored")


class EmailSettings(Section):
    credentials_block: str | None = None
    # `from` is a Python keyword: the field has another name, the YAML key stays `from`.
    sender: str | None = Field(default=None, alias="from")
    recipients: list[str] = Field(default_factory=list)
    send: Literal["failures", "all", "never"] = "failures"
    digest: bool = True
    # RFC 5322's limit for a header line.
    subject: Annotated[str, StringConstraints(max_length=998)] = "{unit} QA: {counts}"
    attachments_max_mb: float = Field(default=10, ge=0)
    quiet_days: float = Field(default=3, ge=0)
    # A result that needs review and has had no person's approval or rejection for this long is
    # listed in the digest, and is reason enough for one; 0: never.
    pending_days: float = Field(default=7, ge=0)
    timeout_seconds: float = Field(default=30, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    # A message handed to the server by a run that died before the answer may have been delivered:
    # sent again (the same message, so the same Message-ID) only by a run at least this much later.
    resend_unknown_after_minutes: float = Field(default=60, ge=0)

    @property
    def resend_unknown_after(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.resend_unknown_after_minutes)

    @property
    def enabled(self) -> bool:
        return self.credentials_block is not None and self.send != "never"

    @property
    def off_reason(self) -> str:
        if self.credentials_block is None:
            return "e-mail is off (no email.credentials-block)"
        return "e-mail is off (email.send: never)" if self.send == "never" else ""

    def problems(self) -> list[tuple[str, str]]:
        """Mistakes that involve more than one key, as (key, message): the caller names the line."""
        if self.credentials_block is None:
            return []
        found = []
        if not self.sender:
            found.append(("from", "is required when email.credentials-block is set (the sender address)"))
        if not self.recipients:
            found.append(("recipients", "needs at least one address when email.credentials-block is set"))
        return found

    @field_validator("credentials_block")
    @classmethod
    def _block_name(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must be the name of an EmailServerCredentials block, or null")
        return value

    @field_validator("sender")
    @classmethod
    def _sender_address(cls, value: str | None) -> str | None:
        if value is not None:
            _check_address(value)
        return value

    @field_validator("recipients")
    @classmethod
    def _recipient_addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            _check_address(address)
        return value

    @field_validator("subject")
    @classmethod
    def _subject_template(cls, value: str) -> str:
        allowed = ", ".join("{" + f + "}" for f in SUBJECT_FIELDS)
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
        except ValueError as exc:  # an unmatched brace
            raise ValueError(f"not a valid template ({exc}); placeholders: {allowed}") from None
        for name in fields:
            if name not in SUBJECT_FIELDS:
                raise ValueError(f"unknown placeholder {{{name}}}; allowed: {allowed}")
        return value


def _check_address(value: str) -> None:
    """Catches the usual slips (a missing @, two addresses in one string); the server judges the rest."""
    found = getaddresses([value])
    if len(found) != 1 or "@" not in found[0][1] or " " in found[0][1]:
        raise ValueError("must be one e-mail address, e.g. qa@clinic.org or 'QA <qa@clinic.org>'")
