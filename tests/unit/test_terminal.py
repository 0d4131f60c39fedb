"""What a person sees in a terminal during a run: verdict lines above the progress bar, never in it.

The run's output goes through a real pseudo-terminal into a terminal emulator (pyte), and the test
reads the screen as it would look."""

from __future__ import annotations

import fcntl
import os
import struct
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pyte

from flows.cli import TerminalProgress
from linac_qa.model import AnalysisResult, Status

COLUMNS, ROWS = 120, 20


@contextmanager
def terminal() -> Iterator[tuple[object, pyte.Screen, pyte.ByteStream, int]]:
    main, side = os.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    os.set_blocking(main, False)
    screen = pyte.Screen(COLUMNS, ROWS)
    with os.fdopen(side, "w", encoding="utf-8", buffering=1) as lines:
        try:
            yield lines, screen, pyte.ByteStream(screen), main
        finally:
            os.close(main)


def drain(main: int, stream: pyte.ByteStream) -> None:
    while True:
        try:
            chunk = os.read(main, 65536)
        except BlockingIOError:
            return
        if not chunk:
            return
        stream.feed(chunk)


def result(name: str, status: Status) -> AnalysisResult:
    return AnalysisResult(
        analysis="light-rad",
        model="FieldAnalysis",
        files=[name],
        status=status,
        reason="x 0.4 mm",
        judged=True,
    )


def test_verdict_lines_stand_above_the_progress_bar_whole() -> None:
    with terminal() as (lines, screen, stream, main):
        progress = TerminalProgress(lines)  # type: ignore[arg-type]
        with progress:
            progress.planned(3)
            for name, status in [("a.dcm", Status.PASSED), ("b.dcm", Status.FAILED)]:
                progress.finished(result(name, status))
                time.sleep(0.3)  # the bar redraws itself meanwhile
            drain(main, stream)
            shown = [line.rstrip() for line in screen.display if line.strip()]
            assert shown[0].startswith("PASS") and shown[0].endswith("a.dcm: x 0.4 mm"), shown
            assert shown[1].startswith("FAIL") and shown[1].endswith("b.dcm: x 0.4 mm"), shown
            assert shown[2].startswith("analysing") and "2/3" in shown[2], shown
        drain(main, stream)
        shown = [line.rstrip() for line in screen.display if line.strip()]
        assert len(shown) == 2 and not any("analysing" in line for line in shown), shown
