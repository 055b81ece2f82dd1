"""Invariants 1-4 under injected faults: nothing lost, nothing doubled, order kept."""

from __future__ import annotations

import os

from streamlet.local import LocalPlatform
from tests.chaos.scenario import PRODUCERS, RECORDS, run_scenario
from tests.harness.history import check

SEED = int(os.environ.get("STREAMLET_CHAOS_SEED", "7"))


def test_idempotent_producers_under_faults(live_platform: LocalPlatform, topic: str) -> None:
    outcome = run_scenario(live_platform, topic, idempotence=True, seed=SEED)
    report = check(outcome.history, final_drain=outcome.drain)
    print(f"seed={SEED} faults={dict(outcome.faults)} restarts={outcome.restarts} "
          f"{outcome.seconds:.1f}s\n{report.summary()}")
    assert sum(outcome.faults.values()) > 50  # the faults really happened
    assert outcome.faults["lost_ack"] > 0 and outcome.faults["ambiguous_500"] > 0
    assert report.ok, report.summary()
    assert report.anomalies() == {}
    acked = sum(1 for e in outcome.history.events
                if getattr(e, "type", None) == "ok" and hasattr(e, "offset"))
    drained = sum(len(rows) for rows in outcome.drain.values())
    assert acked <= drained <= PRODUCERS * RECORDS
    for rows in outcome.drain.values():
        assert [o for o, _ in rows] == list(range(len(rows)))  # dense from 0


def test_without_idempotence_only_duplicates_appear(live_platform: LocalPlatform,
                                                    topic: str) -> None:
    outcome = run_scenario(live_platform, topic, idempotence=False, seed=SEED)
    report = check(outcome.history, final_drain=outcome.drain)
    print(f"seed={SEED} duplicates={report.duplicate_count} faults={dict(outcome.faults)}")
    others = {k: v for k, v in report.anomalies().items() if k != "duplicates"}
    assert others == {}, report.summary()


def test_idempotent_producers_over_the_http_api_under_faults(live_platform: LocalPlatform,
                                                            topic: str) -> None:
    """The same scenario through the HTTP API: faults inside the API (a fleet of Lambdas,
    each with its own cache, so a retry often reaches another one), replies lost between
    the API and the SDK, client crashes. Retries find their first attempts by ``since_ms``."""
    outcome = run_scenario(live_platform, topic, idempotence=True, seed=SEED, over_http=True)
    report = check(outcome.history, final_drain=outcome.drain)
    print(f"seed={SEED} faults={dict(outcome.faults)} restarts={outcome.restarts} "
          f"{outcome.seconds:.1f}s\n{report.summary()}")
    assert outcome.faults["lost_reply"] > 0 and outcome.faults["lost_ack"] > 0
    assert report.ok, report.summary()
    assert report.anomalies() == {}
    for rows in outcome.drain.values():
        assert [o for o, _ in rows] == list(range(len(rows)))  # dense from 0


def test_http_retries_sent_while_their_first_attempt_still_runs_write_once(
        live_platform: LocalPlatform, topic: str) -> None:
    """The same scenario with the SDK giving up on a request after 2 s instead of 35 s, so
    many retries are due while their first attempt is still running in the fleet (waiting
    on storage, or in its own conflict loop): what a loaded machine once did with 35 s,
    and a dropped connection does on AWS. No batch may be written twice."""
    outcome = run_scenario(live_platform, topic, idempotence=True, seed=SEED, over_http=True,
                           client_timeout=2.0)
    report = check(outcome.history, final_drain=outcome.drain)
    print(f"seed={SEED} faults={dict(outcome.faults)} {outcome.seconds:.1f}s\n"
          f"{report.summary()}")
    assert outcome.faults["no_reply"] > 0
    assert report.ok, report.summary()
    assert report.anomalies() == {}
