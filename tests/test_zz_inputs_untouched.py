"""Acceptance of issue 8: originals are never modified, moved or deleted. Every end-to-end test
registers its input folder (tests/conftest.py `register_inputs`) right after building it; this
module is collected last and checks every registered file against its checksum of that moment."""

from __future__ import annotations

import pytest

from tests.conftest import REGISTERED_INPUTS, input_checksums


def test_every_input_of_the_end_to_end_runs_is_unchanged() -> None:
    if not REGISTERED_INPUTS:
        pytest.skip("no end-to-end test ran in this session")
    changed = {}
    for root, before in REGISTERED_INPUTS.items():
        after = input_checksums(root)
        # Tests may add files after registering (new arrivals); none registered may change or vanish.
        differ = {rel: (sha, after.get(rel)) for rel, sha in before.items() if after.get(rel) != sha}
        if differ:
            changed[str(root)] = differ
    assert not changed, changed
    assert sum(len(files) for files in REGISTERED_INPUTS.values()) > 0
