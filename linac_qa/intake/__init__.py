"""Intake: finding the files of a run (folders, sources, zips) and saying what each one is."""
