"""The store's SQL on either driver (issue 20, defect 8): ``?`` placeholders become
SQLAlchemy bound parameters, so a literal '?' (the value of ``Eye.UNKNOWN``), a '%'
or a ':' in the SQL text reaches SQLite and PostgreSQL unchanged."""

from __future__ import annotations

import pytest

from eyescreen_desktop.core.paths import DataPaths
from eyescreen_desktop.core.records import Eye
from eyescreen_desktop.core.store import ClinicStore


@pytest.fixture
def store(tmp_path, database_url):
    with ClinicStore.open(DataPaths(tmp_path / "data"), database_url) as s:
        yield s


def test_a_literal_question_mark_in_sql_is_not_a_placeholder(store):
    (row,) = store._query("SELECT '?' AS unknown, ? AS given, '100%' AS pct, 'a :b' AS colon", ("x",))
    assert (row["unknown"], row["given"], row["pct"], row["colon"]) == (Eye.UNKNOWN.value, "x", "100%", "a :b")


def test_rows_written_and_found_with_a_literal_question_mark(store):
    with store._tx() as db:
        db.executemany("INSERT INTO audit_log (at, \"user\", action, entity, details) VALUES (?, ?, 'eye?', ?, ?)",
                       [("2026-01-01T00:00:00", "nurse", "patient:Q1", "?"),
                        ("2026-01-01T00:00:01", "nurse", "patient:Q1", "L")])
    rows = store._query("SELECT details FROM audit_log WHERE action = 'eye?' AND details = '?' AND entity = ?",
                        ("patient:Q1",))
    assert [r["details"] for r in rows] == ["?"]
