"""The machine's QA record: every verdict's metrics over time, the baselines they are judged
against, tolerance and action levels, drift, and the views a physicist reads them in."""
