"""`linac-qa COMMAND ...`: the installed command for every entry point, as pylinac's `pylinac watch`
was. Each command is the `python -m` module named beside it, which keeps working on its own."""

from __future__ import annotations

import importlib
import sys

# command: (module, its main function, what it does)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "process": ("flows.cli", "main", "analyse what is new in a QA folder (python -m flows.process)"),
    "watch": (
        "flows.cli",
        "watch_main",
        "analyse each new acquisition as it arrives (python -m flows.watch)",
    ),
    "record": ("flows.record", "main", "rebuild or export the QA record (python -m flows.record)"),
    "report": ("flows.report", "main", "write and e-mail the monthly QA report (python -m flows.report)"),
    "baseline": ("flows.baseline", "main", "set, list and show baselines (python -m flows.baseline)"),
    "review": (
        "flows.review",
        "main",
        "list, approve, reject and comment on results (python -m flows.review)",
    ),
    "receive": (
        "deployments.receive",
        "main",
        "receive DICOM images from an EPID workstation or ARIA (python -m deployments.receive)",
    ),
    "setup": ("blocks.setup", "main", "create the Prefect blocks: e-mail server, machine configs"),
    "serve": ("deployments.serve", "main", "serve every machine's deployments (python -m deployments.serve)"),
    "deployments": ("deployments.generate", "main", "write prefect.yaml from machines.yml"),
    "demo": ("linac_qa.testing.demo", "main", "write a synthetic QA drop to try the tool on"),
}

USAGE = "usage: linac-qa COMMAND [ARGS...]   (linac-qa COMMAND --help for each)\n\ncommands:\n" + "".join(
    f"  {name:<12} {what}\n" for name, (_, _, what) in COMMANDS.items()
)
EXAMPLE = "\nexample:\n  linac-qa process /srv/qa/truebeam1 --config truebeam1.yml\n"
EXIT = "\nexit status: that of the command; 2 for an unknown command\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE + EXAMPLE + EXIT, file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] not in COMMANDS:
        print(f"linac-qa: unknown command {args[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    module, function, _ = COMMANDS[args[0]]
    return int(getattr(importlib.import_module(module), function)(args[1:]))


if __name__ == "__main__":
    raise SystemExit(main())
