"""Fixtures for the store tests: the same tests run on SQLite and on PostgreSQL.

PostgreSQL is used when ``STORMWATCH_TEST_DATABASE_URL`` names a server (CI sets it to
``postgresql+psycopg://root@127.0.0.1:5432/test``). Without the variable the PostgreSQL cases
are skipped; with it, a server that does not answer fails them, because a CI job that silently
skipped its database tests would prove nothing.

Each PostgreSQL test gets its own freshly created schema, ``sw_test_<uuid>``, selected through
libpq's ``options=-csearch_path=<schema>`` in the URL handed to the store. Tables without an
explicit schema (all of Stormwatch's) are then created in, and looked up in, that schema only,
so parallel or repeated runs never see each other's rows. The schema is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from memory.store import Store

TEST_DATABASE_URL_VARIABLE = "STORMWATCH_TEST_DATABASE_URL"


def _postgresql_base_url() -> URL:
    """The server named by the environment, normalised to psycopg 3, or skip the test."""
    raw = os.environ.get(TEST_DATABASE_URL_VARIABLE, "").strip()
    if not raw:
        pytest.skip(f"{TEST_DATABASE_URL_VARIABLE} is not set: no PostgreSQL server to test against")
    url = make_url(raw)
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    return url


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    """URL of a new, empty schema on the test server; the schema is dropped afterwards."""
    base = _postgresql_base_url()
    shown = base.render_as_string(hide_password=True)
    schema = f"sw_test_{uuid.uuid4().hex}"
    admin = create_engine(base, connect_args={"connect_timeout": 5})
    problem = None
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except DBAPIError as exc:
        admin.dispose()
        problem = " ".join(str(exc.orig).split())
    if problem is not None:  # failed outside the except block: no chained traceback noise
        pytest.fail(
            f"{TEST_DATABASE_URL_VARIABLE}={shown} is set but the server does not answer: {problem}",
            pytrace=False,
        )
    options = " ".join(filter(None, [base.query.get("options"), f"-csearch_path={schema}"]))
    url = base.update_query_dict({"options": options})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        try:
            with admin.begin() as connection:
                # Never hang on a connection a test left inside a transaction.
                connection.execute(text("SET LOCAL lock_timeout = '10s'"))
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        finally:
            admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty database: a SQLite file in ``tmp_path``, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return URL.create("sqlite", database=str(tmp_path / "stormwatch.db")).render_as_string(
            hide_password=False
        )
    return request.getfixturevalue("postgresql_url")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A store on an empty database, disposed after the test (before its schema is dropped)."""
    with Store(store_url) as opened:
        yield opened
