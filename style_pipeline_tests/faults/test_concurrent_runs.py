"""Two runs of one date at once: each finishes or fails cleanly, and the result is a clean run's."""

from __future__ import annotations

import pytest

from style_pipeline_tests.faults.conftest import DAY, SELECT
from style_pipeline_tests.faults.test_kill_mid_step import assert_same_as_clean

pytestmark = pytest.mark.slow


def test_two_runs_of_one_date_at_once_end_as_one_clean_run(fresh, clean):
    first, second = fresh.start(DAY, SELECT), fresh.start(DAY, SELECT)
    outcomes = [proc.communicate(timeout=180) + (proc.returncode,) for proc in (first, second)]

    codes = [code for _, _, code in outcomes]
    assert 0 in codes, f"neither run succeeded: {[err[-2000:] for _, err, _ in outcomes]}"
    for out, err, code in outcomes:
        # A loser must fail as a failed Dagster run (exit 3 with its summary), not crash.
        assert code in (0, 3), err[-3000:]
        assert "SUMMARY " in out, err[-3000:]
    assert_same_as_clean(fresh, clean)
    assert fresh.files(fresh.tmp) == []  # neither run left a work dir behind
