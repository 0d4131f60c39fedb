"""Fault injection, the side the tests drive: which faults exist and how to ask for them. The
production side is `linac_qa.checkpoints`, which acts only when these environment variables are set.

The crash checkpoints (`CRASH_AT`), in the order a run passes them:
- `analysis` (worker): during the pylinac analysis;
- `outputs` (worker): while the outputs are written, some complete and some not;
- `before-ledger` (main process): a result has arrived and its outputs exist, the ledger has no row;
- `queue-email` (main process): every result is recorded, the run's e-mail is not yet written;
- `email` (main process): the message is in the ledger, about to be handed to the SMTP server;
- `email-sent` (main process): the SMTP server has accepted the message, the ledger does not know.

`STALL_ON`: a fragment of an acquisition's name whose analysis hangs; the run's log then shows
`stall_mark(name)` once the worker is in the analysis.
"""

from __future__ import annotations

from linac_qa.checkpoints import CRASH_AT, STALL_ON, stall_mark

__all__ = ["CHECKPOINTS", "CRASH_AT", "STALL_ON", "stall_mark"]

CHECKPOINTS = ("analysis", "outputs", "before-ledger", "queue-email", "email", "email-sent")
