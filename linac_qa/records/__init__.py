"""The record of a run: the ledger, the outputs on disk, the summary and its reporting."""
