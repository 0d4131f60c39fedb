"""Pass/fail e-mail through a prefect-email block, from a real run on a real Prefect server, to a
real SMTP server (aiosmtpd). The messages and the outbox alone: tests/unit/test_email.py.

Nothing here imports Prefect at module level: the session's Prefect server fixture must set
PREFECT_API_URL before Prefect reads its settings.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from linac_qa.notify.outbox import LAST_ACQUISITION
from linac_qa.testing import synthetic
from tests.conftest import free_port, register_inputs, run_cli
from tests.mailbox import (
    GOOD_PASSWORD,
    NON_ASCII_PF,
    RECIPIENTS,
    SENDER,
    SUBJECT,
    WRONG_PASSWORD,
    Mailbox,
    addresses,
    parts,
    running,
    setup_block,
)

# --------------------------------------------------------------------------- end to end (Prefect)


def write_config(folder: Path, block: str | None, **email: Any) -> Path:
    cfg = folder.parent / f"{folder.name}.yml"
    section: dict[str, Any] = {"from": SENDER, "recipients": RECIPIENTS, "subject": SUBJECT, **email}
    if block:
        section["credentials-block"] = block
    doc = {"general": {"unit": "TrueBeam1", "settle-seconds": 0}, "email": section}
    cfg.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")  # JSON is YAML
    return cfg


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A passing, a failing and an erroring starshot (they analyse in about a second) and a photo."""
    root = tmp_path_factory.mktemp("email-template")
    synthetic.starshot(root / "RI.QA.Starshot_A.dcm", wobble_mm=0.1)
    synthetic.starshot(root / "RI.QA.Starshot_B.dcm", wobble_mm=0.9, seed=1)
    synthetic.truncated_dicom(root / "RI.QA.Starshot_A.dcm", root / "RI.QA.Starshot_truncated.dcm")
    synthetic.png_image(root / "team photo.png")
    return root


TEMPLATE_COUNTS = {"failed": 1, "error": 1, "passed": 1, "ignored": 1}


def fresh_copy(template: Path, tmp_path: Path, name: str, *, picket_fence: bool = False) -> Path:
    """`picket_fence`: also a failing picket fence with a non-ASCII name (its analysis takes ~10 s)."""
    folder = tmp_path / name
    shutil.copytree(template, folder)
    if picket_fence:
        synthetic.picket_fence(folder / NON_ASCII_PF, leaf_error_mm=1.2, seed=1)
    register_inputs(folder)
    return folder


@pytest.fixture(scope="module")
def main_box() -> Iterator[Mailbox]:
    with running(Mailbox()) as box:
        yield box


@pytest.fixture(scope="module")
def main_block(prefect_api: str, main_box: Mailbox) -> str:
    out = setup_block(prefect_api, "lqa-test-relay", main_box.port)
    assert "created" in out or "updated" in out
    return "lqa-test-relay"


def failing_pdfs(root: Path, summary: dict[str, Any]) -> dict[str, bytes]:
    pdfs = [
        o for r in summary["results"] if r["status"] == "failed" for o in r["outputs"] if o.endswith(".pdf")
    ]
    return {Path(o).name: (root / o).read_bytes() for o in pdfs}


def subject_counts(summary: dict[str, Any]) -> str:
    c = Counter(r["status"] for r in summary["results"])
    return SUBJECT.format(
        unit="TrueBeam1", failed=c["failed"], errors=c["error"], passed=c["passed"], ignored=c["ignored"]
    )


def api_post(api: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{api}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def flow_run_of(api: str, root: Path) -> dict[str, Any]:
    runs = api_post(api, "/flow_runs/filter", {"sort": "START_TIME_DESC", "limit": 200})
    return next(r for r in runs if r["parameters"].get("directory") == str(root.resolve()))


@pytest.mark.e2e
def test_digest_through_the_block(
    template: Path, tmp_path: Path, main_box: Mailbox, main_block: str, prefect_api: str
) -> None:
    root = fresh_copy(template, tmp_path, "digest", picket_fence=True)
    main_box.received.clear()
    run = run_cli(root, "--config", write_config(root, main_block), "--json", api=prefect_api)
    assert run.code == 1, run.stderr[-3000:]
    summary = run.summary
    assert Counter(r["status"] for r in summary["results"]) == {
        "failed": 2,
        "error": 1,
        "passed": 1,
        "ignored": 1,
    }
    [mail] = main_box.received
    assert mail.mail_from == "qa-robot@clinic.test"
    assert mail.rcpt_tos == ["physics@clinic.test", "grosse@clinic.test"]
    assert addresses(mail.message, "From") == ["qa-robot@clinic.test"]
    assert addresses(mail.message, "To") == mail.rcpt_tos
    assert (
        mail.message["Subject"]
        == subject_counts(summary)
        == "TrueBeam1 QA: 2 failed, 1 errors, 1 passed, 1 ignored"
    )
    text, page, attachments = parts(mail.message)
    expected = failing_pdfs(root, summary)
    assert "RI.QA.PF_Größe Ω_analysis.pdf" in expected and len(expected) == 2
    assert attachments == expected  # byte-identical, the non-ASCII name intact
    assert "RI.QA.Starshot_A_analysis.pdf" not in attachments  # no passing report in `failures` mode
    assert "RI.QA.Starshot_truncated.dcm" in text and "RI.QA.Starshot_truncated.dcm" in page
    assert [n["status"] for n in summary["notifications"]] == ["sent"]

    # The Prefect UI shows the notification as a task run with its outcome.
    flow_run = flow_run_of(prefect_api, root)
    tasks = api_post(prefect_api, "/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run["id"]]}}})
    [notify] = [t for t in tasks if t["name"].startswith("notify")]
    assert notify["state"]["type"] == "COMPLETED" and notify["state"]["message"] == "1 e-mail(s) sent"


@pytest.mark.e2e
def test_one_message_per_failure_or_error(
    template: Path, tmp_path: Path, main_box: Mailbox, main_block: str, prefect_api: str
) -> None:
    root = fresh_copy(template, tmp_path, "per-analysis")
    main_box.received.clear()
    run = run_cli(root, "--config", write_config(root, main_block, digest=False), "--json", api=prefect_api)
    assert run.code == 1, run.stderr[-3000:]
    problems = [r for r in run.summary["results"] if r["status"] in ("failed", "error")]
    assert len(main_box.received) == len(problems) == 2
    assert [n["status"] for n in run.summary["notifications"]] == ["sent"] * 2
    assert sorted(m.message["Subject"] for m in main_box.received) == [
        "TrueBeam1 QA: 0 failed, 1 errors, 0 passed, 0 ignored (starshot: RI.QA.Starshot_truncated.dcm)",
        "TrueBeam1 QA: 1 failed, 0 errors, 0 passed, 0 ignored (starshot: RI.QA.Starshot_B.dcm)",
    ]
    attached: dict[str, bytes] = {}
    for mail in main_box.received:
        attached.update(parts(mail.message)[2])
    assert attached == failing_pdfs(root, run.summary)


@pytest.mark.e2e
def test_server_down_keeps_the_digest_for_the_next_run_then_quiet_days(
    template: Path, tmp_path: Path, prefect_api: str
) -> None:
    port = free_port()  # the block's server is down for the first run
    setup_block(prefect_api, "lqa-test-later", port)
    root = fresh_copy(template, tmp_path, "down")
    config = write_config(root, "lqa-test-later", retries=1)
    first = run_cli(root, "--config", config, "--json", api=prefect_api)
    assert first.code == 1, first.stderr[-3000:]  # the results decide the exit status, not the e-mail
    # The same results as with a working server (exit status 1 for the failure and the error).
    assert Counter(r["status"] for r in first.summary["results"]) == TEMPLATE_COUNTS
    [note] = first.summary["notifications"]
    assert (
        note["status"] == "failed" and "connection refused" in note["detail"] and "next run" in note["detail"]
    )
    assert "2 attempt(s)" in note["detail"]  # retried within the run
    assert "connection refused" in first.stderr

    # Silence is not good news: make the last new acquisition four days old, so the next run (with
    # nothing new) owes a quiet-days warning as well as the pending digest.
    four_days_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=4)).isoformat()
    with sqlite3.connect(root / ".linac-qa" / "ledger.sqlite") as db:
        changed = db.execute("UPDATE state SET value = ? WHERE key = ?", (four_days_ago, LAST_ACQUISITION))
        assert changed.rowcount == 1

    box = Mailbox(port)
    box.start()
    try:
        second = run_cli(root, "--config", config, "--json", api=prefect_api)
        third = run_cli(root, "--config", config, "--json", api=prefect_api)
    finally:
        box.stop()
    assert second.code == third.code == 0, second.stderr[-3000:]
    assert second.summary["results"] == third.summary["results"] == []  # nothing re-analysed
    # The pending digest first, then the warning; each exactly once, although two runs saw the server.
    digest, warning = (m.message for m in box.received)
    assert digest["Subject"] == subject_counts(first.summary)
    assert parts(digest)[2] == failing_pdfs(root, first.summary)
    assert warning["Subject"] == "TrueBeam1 QA: no new acquisitions for 4 days"
    assert "broken export" in parts(warning)[0]
    assert [n["status"] for n in second.summary["notifications"]] == ["sent", "sent"]
    assert "written by the run of" in second.summary["notifications"][0]["detail"]
    assert [n["status"] for n in third.summary["notifications"]] == ["none"]  # not every night after


@pytest.mark.e2e
def test_wrong_password_is_a_clear_error_and_never_shown(
    template: Path, tmp_path: Path, prefect_api: str
) -> None:
    box = Mailbox(password=GOOD_PASSWORD)
    box.start()
    try:
        setup_block(prefect_api, "lqa-test-auth", box.port, username="qa", password=WRONG_PASSWORD)
        root = tmp_path / "auth"
        root.mkdir()
        shutil.copy(template / "RI.QA.Starshot_B.dcm", root)
        run = run_cli(
            root, "--config", write_config(root, "lqa-test-auth", retries=0), "--json", api=prefect_api
        )
    finally:
        box.stop()
    assert run.code == 1 and box.received == [], run.stderr[-3000:]
    [note] = run.summary["notifications"]
    assert note["status"] == "failed"
    assert "refused the login of user 'qa'" in note["detail"] and "lqa-test-auth" in note["detail"]
    assert "refused the login of user 'qa'" in run.stderr  # in the log
    flow_run = flow_run_of(prefect_api, root)
    logs = api_post(prefect_api, "/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run["id"]]}}})
    artifacts = api_post(prefect_api, "/artifacts/filter", {"flow_runs": {"id": {"any_": [flow_run["id"]]}}})
    assert any("refused the login" in log["message"] for log in logs)
    everything = [run.stdout, run.stderr, json.dumps(logs), json.dumps(artifacts), json.dumps(flow_run)]
    everything += [
        p.read_bytes().decode("latin-1") for p in root.rglob("*") if p.is_file()
    ]  # ledger, outputs
    assert not [text for text in everything if WRONG_PASSWORD in text]


@pytest.mark.e2e
def test_email_off_sends_nothing_and_opens_no_connection(
    template: Path, tmp_path: Path, main_box: Mailbox, main_block: str, prefect_api: str
) -> None:
    root = tmp_path / "off"
    root.mkdir()
    shutil.copy(template / "RI.QA.Starshot_B.dcm", root)
    connections = main_box.connections
    main_box.received.clear()
    never = run_cli(root, "--config", write_config(root, main_block, send="never"), "--json", api=prefect_api)
    no_block = run_cli(root, "--config", write_config(root, None), "--json", "--force", api=prefect_api)
    for run, why in ((never, "email.send: never"), (no_block, "no email.credentials-block")):
        assert run.code == 1 and len(run.summary["results"]) == 1, run.stderr[-3000:]
        assert run.summary["notifications"] == [
            {"channel": "email", "status": "none", "detail": f"e-mail is off ({why})"}
        ]
    assert main_box.received == [] and main_box.connections == connections
    with sqlite3.connect(root / ".linac-qa" / "ledger.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM notifications").fetchone() == (0,)


@pytest.mark.e2e
def test_a_login_without_a_password_and_without_a_terminal_saves_nothing(prefect_api: str) -> None:
    name = "lqa-test-no-password"
    args = ["email", "--name", name, "--server", "127.0.0.1", "--security", "none", "--username", "qa"]
    setup = run_cli(
        *args, module="blocks.setup", api=prefect_api, env_overrides={"LINAC_QA_SMTP_PASSWORD": None}
    )
    assert setup.code == 2, setup.stderr[-2000:]
    assert "needs a password" in setup.stderr and "LINAC_QA_SMTP_PASSWORD" in setup.stderr
    saved = api_post(prefect_api, "/block_documents/filter", {"block_documents": {"name": {"any_": [name]}}})
    assert saved == []
    # Said explicitly, a login without a password is stored (a relay that checks only the user).
    allowed = run_cli(*args, "--no-password", module="blocks.setup", api=prefect_api)
    assert allowed.code == 0 and "user 'qa', no password" in allowed.stdout, allowed.stderr[-2000:]
