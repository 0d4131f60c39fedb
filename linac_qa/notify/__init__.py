"""Notifications (docs/design.md section 4, step 5): what a run has to say, built as e-mail, kept in the
ledger until it is delivered. Plain functions; the Prefect task that sends lives in `flows.tasks`.

Nothing here imports Prefect at module level: the config (which every process loads) imports
`linac_qa.notify.settings`.
"""
