"""The results database: every `twofold measure` run, its measurements and its fitted profile.

SQLite, one file (default `$TWOFOLD_DB`, else `$TWOFOLD_HOME/results.db`, else
`~/.twofold/results.db`). Three tables:

- `runs`: id, time (UTC ISO 8601), kind ("measure"), device name, device fingerprint, versions
  (JSON), notes (JSON);
- `measurements`: run id, name, params (JSON), value, unit;
- `profiles`: run id, the profile YAML as written.

A run is written in one transaction (`record_run`): either all of it lands or nothing does, so an
interrupted or failed run leaves the database as it was. Before a long measurement starts,
`check_writable` proves the file can be opened, is a twofold database (or empty) and is not locked,
without changing it, so that a bad `--db` fails in a second rather than after the sweep.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twofold.errors import InputError

__all__ = [
    "MeasurementRow",
    "RunRecord",
    "check_writable",
    "default_db_path",
    "list_runs",
    "record_run",
    "run_measurements",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    device TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    versions TEXT NOT NULL,
    notes TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS measurements (
    run_id TEXT NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL,
    params TEXT NOT NULL,
    value REAL NOT NULL,
    unit TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS measurements_run ON measurements(run_id);
CREATE TABLE IF NOT EXISTS profiles (
    run_id TEXT PRIMARY KEY REFERENCES runs(id),
    yaml TEXT NOT NULL
);
"""
_TABLES = {"runs", "measurements", "profiles"}
_LOCK_TIMEOUT_S = 2.0


@dataclass(frozen=True, kw_only=True, slots=True)
class MeasurementRow:
    name: str
    params: Mapping[str, Any]
    value: float
    unit: str


@dataclass(frozen=True, kw_only=True, slots=True)
class RunRecord:
    id: str
    time: str
    kind: str
    device: str
    fingerprint: str
    versions: Mapping[str, str]
    notes: Mapping[str, Any]
    num_measurements: int = 0
    has_profile: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.time,
            "kind": self.kind,
            "device": self.device,
            "fingerprint": self.fingerprint,
            "versions": dict(self.versions),
            "notes": dict(self.notes),
            "num_measurements": self.num_measurements,
            "has_profile": self.has_profile,
        }


def default_db_path() -> Path:
    """`$TWOFOLD_DB`, else `$TWOFOLD_HOME/results.db`, else `~/.twofold/results.db`."""
    if os.environ.get("TWOFOLD_DB"):
        return Path(os.environ["TWOFOLD_DB"]).expanduser()
    home = os.environ.get("TWOFOLD_HOME") or Path.home() / ".twofold"
    return Path(home).expanduser() / "results.db"


def _connect(path: Path, *, create: bool) -> sqlite3.Connection:
    if path.is_dir():
        raise InputError("db", str(path), "is a directory, not a database file")
    if not path.exists() and not create:
        raise InputError("db", str(path), "no such database (run `twofold measure` first)")
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError("db", str(path), f"cannot create its folder ({exc.strerror})") from None
    mode = "rwc" if create else "ro"
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction spans all writes.
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode={mode}", uri=True, timeout=_LOCK_TIMEOUT_S, isolation_level=None
        )
    except sqlite3.Error as exc:
        raise InputError("db", str(path), f"cannot be opened ({exc})") from None
    return conn


def _raise_db_error(path: Path, exc: sqlite3.Error) -> None:
    text = str(exc)
    if "locked" in text or "busy" in text:
        raise InputError(
            "db", str(path), "is locked by another process; try again when it finishes"
        ) from None
    if "not a database" in text or "malformed" in text:
        raise InputError("db", str(path), "is not an SQLite database (or it is corrupt)") from None
    if "readonly" in text or "unable to open" in text:
        raise InputError("db", str(path), f"cannot be written ({text})") from None
    raise InputError("db", str(path), f"database error: {text}") from None


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if names and not _TABLES <= names:
        raise InputError(
            "db", str(path), f"is an SQLite database but not twofold's (tables: {sorted(names)})"
        )


def check_writable(path: str | Path) -> None:
    """Fail now (InputError) if a run could not be recorded at `path`; changes nothing on disk.

    A missing file is fine if its folder can be created. An existing file must be a twofold (or
    empty) SQLite database that this process can lock for writing.
    """
    path = Path(path).expanduser()
    if not path.exists():
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is None or not os.access(parent, os.W_OK):
            raise InputError("db", str(path), "its folder cannot be created or written")
        return
    if not os.access(path, os.R_OK | os.W_OK):
        raise InputError("db", str(path), "cannot be read and written by this user")
    conn = _connect(path, create=True)
    try:
        _check_schema(conn, path)
        conn.execute("BEGIN IMMEDIATE")  # takes the write lock, proving nobody else holds it
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        _raise_db_error(path, exc)
    finally:
        conn.close()


def record_run(
    path: str | Path,
    *,
    run_id: str,
    time: str,
    device: str,
    fingerprint: str,
    versions: Mapping[str, str],
    measurements: Iterable[MeasurementRow],
    profile_yaml: str | None,
    kind: str = "measure",
    notes: Mapping[str, Any] | None = None,
) -> None:
    """Write one run, its measurements and its profile in a single transaction.

    Any exception while writing (a bad row, a full disk, Ctrl-C) rolls the transaction back and
    propagates; a database error becomes an `InputError` naming the file.
    """
    path = Path(path).expanduser()
    conn = _connect(path, create=True)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            _check_schema(conn, path)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO runs (id, time, kind, device, fingerprint, versions, notes)"
                " VALUES (?,?,?,?,?,?,?)",
                (
                    run_id,
                    time,
                    kind,
                    device,
                    fingerprint,
                    json.dumps(dict(versions)),
                    json.dumps(dict(notes or {})),
                ),
            )
            for row in measurements:
                conn.execute(
                    "INSERT INTO measurements (run_id, name, params, value, unit) VALUES (?,?,?,?,?)",
                    (
                        run_id,
                        row.name,
                        json.dumps(dict(row.params), sort_keys=True),
                        float(row.value),
                        row.unit,
                    ),
                )
            if profile_yaml is not None:
                conn.execute("INSERT INTO profiles (run_id, yaml) VALUES (?,?)", (run_id, profile_yaml))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        _raise_db_error(path, exc)
    finally:
        conn.close()


def list_runs(path: str | Path, *, limit: int | None = None) -> list[RunRecord]:
    """Runs, newest first, with how many measurements each stored and whether it has a profile."""
    path = Path(path).expanduser()
    conn = _connect(path, create=False)
    try:
        _check_schema(conn, path)
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not names:
            return []
        query = (
            "SELECT r.id, r.time, r.kind, r.device, r.fingerprint, r.versions, r.notes,"
            " (SELECT COUNT(*) FROM measurements m WHERE m.run_id = r.id),"
            " EXISTS (SELECT 1 FROM profiles p WHERE p.run_id = r.id)"
            " FROM runs r ORDER BY r.time DESC, r.id DESC"
        )
        rows: Sequence[Any] = conn.execute(
            query + (" LIMIT ?" if limit else ""), (limit,) if limit else ()
        ).fetchall()
    except sqlite3.Error as exc:
        _raise_db_error(path, exc)
        raise  # unreachable: _raise_db_error always raises
    finally:
        conn.close()
    return [
        RunRecord(
            id=r[0],
            time=r[1],
            kind=r[2],
            device=r[3],
            fingerprint=r[4],
            versions=json.loads(r[5]),
            notes=json.loads(r[6]),
            num_measurements=int(r[7]),
            has_profile=bool(r[8]),
        )
        for r in rows
    ]


def run_measurements(path: str | Path, run_id: str) -> list[MeasurementRow]:
    """The measurements one run stored (for comparisons across runs)."""
    path = Path(path).expanduser()
    conn = _connect(path, create=False)
    try:
        rows = conn.execute(
            "SELECT name, params, value, unit FROM measurements WHERE run_id = ? ORDER BY rowid", (run_id,)
        ).fetchall()
    except sqlite3.Error as exc:
        _raise_db_error(path, exc)
        raise
    finally:
        conn.close()
    return [MeasurementRow(name=r[0], params=json.loads(r[1]), value=r[2], unit=r[3]) for r in rows]
