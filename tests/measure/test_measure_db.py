"""The results database: round trip, one-transaction writes, and clear errors on bad files.

Reference: SQLite's own view of the file (`iterdump`) before and after a failed write; the rows
written are compared with the values the test put in.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from twofold.errors import InputError
from twofold.measure.db import MeasurementRow, check_writable, list_runs, record_run, run_measurements


def _write(path: Path, run_id: str, rows: object, profile: str | None = "chip: x\n") -> None:
    record_run(
        path,
        run_id=run_id,
        time=f"2026-01-0{run_id[-1]}T00:00:00+00:00",
        device="test cpu",
        fingerprint="abc",
        versions={"torch": "2.x"},
        measurements=rows,  # type: ignore[arg-type]
        profile_yaml=profile,
    )


def _dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def _rows(n: int) -> list[MeasurementRow]:
    return [MeasurementRow(name=f"k{i}", params={"m": i}, value=0.5 * i, unit="s") for i in range(n)]


def test_round_trip_lists_runs_newest_first(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    _write(db, "run1", _rows(3))
    _write(db, "run2", _rows(2), profile=None)
    runs = list_runs(db)
    assert [r.id for r in runs] == ["run2", "run1"]
    assert [r.num_measurements for r in runs] == [2, 3]
    assert [r.has_profile for r in runs] == [False, True]
    assert runs[1].versions == {"torch": "2.x"}
    stored = run_measurements(db, "run1")
    assert [(m.name, dict(m.params), m.value) for m in stored] == [
        ("k0", {"m": 0}, 0.0),
        ("k1", {"m": 1}, 0.5),
        ("k2", {"m": 2}, 1.0),
    ]


class _Boom(RuntimeError):
    pass


def _failing_rows() -> Iterator[MeasurementRow]:
    yield from _rows(5)
    raise _Boom("interrupted mid-write")


def test_failed_write_leaves_database_unchanged(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    _write(db, "run1", _rows(3))
    before = _dump(db)
    with pytest.raises(_Boom):
        _write(db, "run2", _failing_rows())
    assert _dump(db) == before
    assert [r.id for r in list_runs(db)] == ["run1"]


def test_failed_first_write_leaves_no_tables(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    with pytest.raises(_Boom):
        _write(db, "run1", _failing_rows())
    # The schema is created inside the same transaction, so even it is rolled back.
    assert not db.exists() or _dump(db) in ([], ["BEGIN TRANSACTION;", "COMMIT;"])


def test_duplicate_run_id_rolls_back_everything(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    _write(db, "run1", _rows(3))
    before = _dump(db)
    with pytest.raises(InputError, match="database error"):
        _write(db, "run1", _rows(4))
    assert _dump(db) == before


def test_locked_database_is_a_clear_error_and_untouched(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    _write(db, "run1", _rows(1))
    before = _dump(db)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(InputError, match="locked"):
            check_writable(db)
        with pytest.raises(InputError, match="locked"):
            _write(db, "run2", _rows(2))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _dump(db) == before


def test_not_a_database_is_a_clear_error_and_untouched(tmp_path: Path) -> None:
    db = tmp_path / "notes.txt"
    db.write_bytes(b"this is not sqlite, " * 100)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    with pytest.raises(InputError, match="not an SQLite database"):
        check_writable(db)
    with pytest.raises(InputError, match="not an SQLite database"):
        _write(db, "run1", _rows(1))
    with pytest.raises(InputError, match="not an SQLite database"):
        list_runs(db)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    before = _dump(db)
    with pytest.raises(InputError, match="not twofold's"):
        check_writable(db)
    with pytest.raises(InputError, match="not twofold's"):
        _write(db, "run1", _rows(1))
    assert _dump(db) == before


def test_check_writable_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "r.db"
    check_writable(db)
    assert not db.exists() and not db.parent.exists()


def test_missing_database_for_history(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such database"):
        list_runs(tmp_path / "none.db")
