"""The demo's whole story on a small universe (one symbol per sector, two small members), in
Prefect's ephemeral mode: the first model promoted past the floors, the monitor through the
simulated live period, the live storm raised as a rare event that starts a retraining as of
its session (delivered in process), the gate's decision, the archive grown with the storm at its
detection, while it lasts and once it closed, and the timeline in order."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from flows.config import Settings, load_config
from memory.registry import Registry
from tests.flows.test_retrain import small_config

TODAY = date(2026, 6, 1)


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def test_the_story_trains_watches_the_storm_retrains_on_it_and_gates(harness, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.data import open_store
    from flows.demo import run_story

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    path = small_config(tmp_path / "small.yaml")
    raw = yaml.safe_load(path.read_text())  # two members keep the two retrainings to seconds
    raw["models"]["zoo"] = {name: raw["models"]["zoo"][name] for name in ("lightgbm", "logistic_regression")}
    raw["models"]["validation"]["ensemble_storm_members"] = None  # the storm member is not in this zoo
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    loaded = load_config(path)
    settings = Settings()
    story = run_story(loaded, settings, today=TODAY, per_sector=1)
    assert story.in_process and len(story.symbols) == 11
    whats = [s.what for s in story.timeline]
    assert whats[0] == "retrained" and "promoted to champion" in story.timeline[0].detail
    storm = next(s for s in story.timeline if s.what == "rare event")
    assert storm.session > TODAY
    second = [s for s in story.timeline if s.what == "retrained"][1]
    assert second.session == storm.session and "stormwatch.rare-event.detected" in second.detail
    assert ("promoted" in second.detail) or ("refused by the gate" in second.detail)
    assert "drift" in whats
    # The archive takes the storm in when it is detected (before the retraining it starts, which reads
    # that version), grows with it while it lasts, and again once it closes (it does by the live
    # period's end with this today).
    at_detection = whats.index("rare event") + 1
    assert story.timeline[at_detection].what in ("archive", "archive grew")
    assert story.timeline[at_detection].session == storm.session and "at its detection" in \
        story.timeline[at_detection].detail
    assert story.timeline.index(second) > at_detection
    grew = [s for s in story.timeline if s.what == "archive grew"]
    assert grew and grew[0].session < grew[-1].session and "labelled samples" in grew[0].detail
    assert any("sessions after its detection" in s.detail for s in grew)
    assert any("now closed" in s.detail for s in story.timeline if s.what.startswith("archive"))
    assert [s.session for s in story.timeline] == sorted(s.session for s in story.timeline)
    assert len(story.runs) == 2 and story.report is not None and story.report.exists()
    store = open_store(settings)
    try:
        decisions = Registry(store).decisions()
    finally:
        store.dispose()
    assert [d.run_id for d in decisions] == list(story.runs)
