"""The registry on SQLite and PostgreSQL: aliases move atomically, concurrent promotions leave
one champion, a promotion killed midway leaves the old one serving, rollback restores it."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import pytest

from memory.registry import CHALLENGER, CHAMPION, Registry, RegistryError
from memory.runs import RunStore, new_run
from memory.store import Store


def started(store: Store, run_id: str) -> RunStore:
    runs = RunStore(Path("unused"), store)  # records only: no model file is written here
    runs.start(new_run(run_id=run_id, config_hash="0" * 64, config_version="1.0.0", as_of=date(2026, 6, 1),
                       source="simulated", symbols=["AAPL"], variant="hybrid"))
    return runs


def succeeded(store: Store, run_id: str) -> str:
    started(store, run_id).update(run_id, status="succeeded")
    return run_id


def test_promote_and_rollback(store: Store) -> None:
    registry = Registry(store)
    first, second = succeeded(store, "run-a"), succeeded(store, "run-b")
    assert registry.promote(first, reason="first") is None
    registry.set_alias(CHALLENGER, second, reason="waiting")
    assert registry.promote(second, reason="passed") == first
    assert registry.champion() == second and registry.alias(CHALLENGER) is None  # promoted out of waiting
    assert registry.rollback(reason="bad week") == first and registry.champion() == first
    versions = {v.run_id: v.aliases for v in registry.versions()}
    assert versions == {"run-a": ("champion",), "run-b": ()}
    assert [h.reason for h in registry.history() if h.alias == CHAMPION][-1] == "bad week"


def test_only_succeeded_runs_can_be_aliased(store: Store) -> None:
    registry = Registry(store)
    started(store, "run-x")
    with pytest.raises(RegistryError, match="run-x is running"):
        registry.promote("run-x", reason="too early")
    with pytest.raises(RegistryError, match="no earlier champion"):
        registry.rollback()


def test_a_promotion_killed_midway_leaves_the_old_champion_serving(store: Store) -> None:
    registry = Registry(store)
    registry.promote(succeeded(store, "run-a"), reason="first")
    succeeded(store, "run-b")

    def crash() -> None:
        raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        registry.set_alias(CHAMPION, "run-b", reason="half done", _before_commit=crash)
    assert registry.champion() == "run-a"
    assert [h.run_id for h in registry.history()] == ["run-a"]


def test_concurrent_promotions_leave_exactly_one_champion(store: Store, store_url: str) -> None:
    ids = [succeeded(store, f"run-{i}") for i in range(6)]
    errors: list[BaseException] = []

    def promote(run_id: str) -> None:
        try:
            with Store(store_url) as own:  # one connection pool per "process"
                Registry(own).promote(run_id, reason="race")
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=promote, args=(run_id,)) for run_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    registry = Registry(store)
    champion = registry.champion()
    assert champion in ids
    assert [v.run_id for v in registry.versions() if CHAMPION in v.aliases] == [champion]
    moves = [h for h in registry.history() if h.alias == CHAMPION]
    assert len(moves) == 6 and moves[-1].run_id == champion
