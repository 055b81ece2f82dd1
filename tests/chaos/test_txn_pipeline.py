"""Invariant 9 end to end: a consume-transform-produce pipeline with transactions under
faults, crashes inside commits, zombies, rebalances and abandoned transactions."""

from __future__ import annotations

import os

import pytest

from streamlet.local import LocalPlatform
from tests.chaos.txn_process import RECORDS, expected
from tests.chaos.txn_scenario import COMMIT_CRASHES, STALL_LIMIT, run_pipeline
from tests.harness.txn_history import Output, check_txn

SEED = int(os.environ.get("STREAMLET_CHAOS_SEED", "7"))
# A crashed process's heartbeat thread dies of its SimulatedCrash, as the process would.


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_pipeline_outputs_exactly_once_under_faults(live_platform: LocalPlatform,
                                                    topic: str) -> None:
    out = run_pipeline(live_platform, topic, SEED)
    report = check_txn(out.history, inputs=out.inputs, drain=out.drain,
                       committed=out.committed, expected=expected, stall_limit=STALL_LIMIT,
                       statuses=out.statuses)
    outcomes = {s: sum(1 for v in out.statuses.values() if v == s)
                for s in ("committed", "aborted", "open")}
    print(f"seed={SEED} {out.seconds:.1f}s counts={dict(out.counts)} "
          f"faults={dict(out.faults)} fired={out.fired} transactions={outcomes} "
          f"observations={out.observations} phases={out.phases}\n{report.summary()}")
    assert len(out.inputs) == RECORDS
    assert out.counts["unprocessed"] == 0, "the pipeline did not finish"
    assert report.ok, report.summary()

    # the faults and crashes really happened
    assert all(out.faults[f] > 0 for f in ("throttle", "lost_ack", "ambiguous_500",
                                          "timeout_before")), out.faults
    assert set(out.fired) == set(COMMIT_CRASHES)
    assert out.counts["SimulatedCrash"] >= len(COMMIT_CRASHES)
    assert outcomes["aborted"] > 0 and outcomes["open"] == 0
    # aborted transactions left their outputs in the log, never readable
    aborted = {t for t, s in out.statuses.items() if s == "aborted"}
    stored = [o for rows in out.uncommitted.values() for _, v in rows
              if (o := Output.decode(v)) is not None and o.txn in aborted]
    assert stored

    # zombies replaced under their transactional id were fenced (the one paused past its
    # session and the one whose commit was sent after the epoch bump), and nothing they
    # sent after resuming was even stored; the one whose partitions only moved in the group
    # had its transaction (outputs and offsets) aborted by the leases; the slow one's
    # timed out (its late sends, or else its commit, were refused)
    assert [p.outcome for p in out.pauses[:3]] == ["fenced", "fenced", "aborted"]
    assert all(p.txn is not None and out.statuses[p.txn] == "aborted" for p in out.pauses)
    reasons = [out.reasons[p.txn] for p in out.pauses if p.txn is not None]
    assert "lease" in reasons[2] and "timed out" in reasons[3], reasons
    stored_values = {v for rows in out.uncommitted.values() for _, v in rows}
    assert not stored_values & {v for p in out.pauses[:2] for v in p.late_sends}

    # the abandoned transactions ended by their timeout alone (no stall: report.ok)
    abandoned = {t: r for t, r in out.reasons.items() if "abandoned" in t[0]}
    assert len(abandoned) == 2 and all("timed out" in r for r in abandoned.values())
    assert report.strict_observations > 0
