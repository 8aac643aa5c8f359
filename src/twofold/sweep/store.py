"""The sweep store: one SQLite row per finished scenario, written the moment it finishes.

The file defaults to `$TWOFOLD_SWEEP_DB`, else `sweeps.db` in twofold's home (`$TWOFOLD_HOME`,
else `~/.twofold`, the folder of the measure results database). It is a file of its own rather
than tables inside `results.db` because `twofold measure` refuses a database whose tables are not
its own; a sweep store holds only the table below and refuses anything else the same way.

    sweep_results(key PRIMARY KEY, version, scenario JSON, status, result JSON, message,
                  elapsed_s, worker, finished_at)

`key` is `scenario_key(scenario, version)`: the sha256 of the canonical scenario JSON and the
twofold version, so a rerun of the same spec with the same version finds its work done, and a new
version plans again next to the old rows. Each result is its own transaction (WAL journal, so
readers such as a report never block the writer): a Ctrl-C or a crash loses at most the result
being written, never one already committed.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from twofold.errors import InputError
from twofold.outputs import check_output_path
from twofold.sweep.scenario import Outcome
from twofold.sweep.spec import Scenario

__all__ = ["StoredResult", "SweepStore", "default_store_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sweep_results (
    key TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    scenario TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    message TEXT NOT NULL,
    elapsed_s REAL NOT NULL,
    worker TEXT NOT NULL,
    finished_at TEXT NOT NULL
)
"""
_TABLE = "sweep_results"
_LOCK_TIMEOUT_S = 10.0
_BATCH = 500  # keys per `IN (...)` query, below SQLite's bound-parameter limit


def default_store_path() -> Path:
    """`$TWOFOLD_SWEEP_DB`, else `$TWOFOLD_HOME/sweeps.db`, else `~/.twofold/sweeps.db`."""
    if os.environ.get("TWOFOLD_SWEEP_DB"):
        return Path(os.environ["TWOFOLD_SWEEP_DB"]).expanduser()
    home = os.environ.get("TWOFOLD_HOME") or Path.home() / ".twofold"
    return Path(home).expanduser() / "sweeps.db"


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredResult:
    """One row of the store, decoded."""

    key: str
    version: str
    scenario: Scenario
    status: str
    result: dict[str, Any] | None
    message: str
    elapsed_s: float
    worker: str
    finished_at: str


class SweepStore:
    """An open sweep store; use as a context manager (`with SweepStore(path) as store:`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise InputError("out", str(self.path), "is a directory, not a database file")
        if self.path == default_store_path():
            # twofold's own folder is the one a path may create (`twofold.outputs`: one rule).
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                rule = f"cannot create its folder ({exc.strerror})"
                raise InputError("out", str(self.path), rule) from None
        elif not self.path.is_file():
            check_output_path(self.path)
        try:
            # Autocommit (isolation_level=None): each INSERT is its own transaction, committed
            # before `put` returns, so a result is durable the moment it is reported done.
            self._conn = sqlite3.connect(self.path, timeout=_LOCK_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise InputError("out", str(self.path), _describe(exc)) from None
        try:
            names = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if names and _TABLE not in names:
                raise InputError(
                    "out",
                    str(self.path),
                    f"is an SQLite database but not a sweep store (tables: {sorted(names)})",
                )
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL under WAL: a commit survives a process crash; only an OS crash may lose the last one.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            self._conn.close()
            raise InputError("out", str(self.path), _describe(exc)) from None
        except InputError:
            self._conn.close()
            raise

    def __enter__(self) -> SweepStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def done_keys(self, keys: Iterable[str]) -> set[str]:
        """The subset of `keys` already stored."""
        keys = list(keys)
        found: set[str] = set()
        for start in range(0, len(keys), _BATCH):
            chunk = keys[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(f"SELECT key FROM {_TABLE} WHERE key IN ({marks})", chunk)
            found.update(r[0] for r in rows)
        return found

    def put(self, key: str, version: str, scenario: Scenario, outcome: Outcome) -> None:
        """Store one finished scenario in its own transaction (a rewrite of a key replaces it)."""
        finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        try:
            self._conn.execute(
                f"INSERT OR REPLACE INTO {_TABLE} (key, version, scenario, status, result, message,"
                " elapsed_s, worker, finished_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    key,
                    version,
                    scenario.canonical_json(),
                    outcome.status,
                    outcome.result_json,
                    outcome.message,
                    float(outcome.elapsed_s),
                    outcome.worker,
                    finished_at,
                ),
            )
        except sqlite3.Error as exc:
            raise InputError("out", str(self.path), _describe(exc)) from None

    def results(self, keys: Iterable[str] | None = None) -> list[StoredResult]:
        """Stored rows for `keys` in their order (missing keys skipped), or every row by key."""
        if keys is None:
            rows = list(self._conn.execute(f"SELECT * FROM {_TABLE} ORDER BY key"))
            return [_decode(r) for r in rows]
        keys = list(keys)
        by_key: dict[str, tuple[Any, ...]] = {}
        for start in range(0, len(keys), _BATCH):
            chunk = keys[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            for row in self._conn.execute(f"SELECT * FROM {_TABLE} WHERE key IN ({marks})", chunk):
                by_key[row[0]] = row
        return [_decode(by_key[k]) for k in keys if k in by_key]

    def __iter__(self) -> Iterator[StoredResult]:
        return iter(self.results())


def _decode(row: tuple[Any, ...]) -> StoredResult:
    key, version, scenario, status, result, message, elapsed_s, worker, finished_at = row
    return StoredResult(
        key=key,
        version=version,
        scenario=Scenario.from_dict(json.loads(scenario)),
        status=status,
        result=None if result is None else json.loads(result),
        message=message,
        elapsed_s=elapsed_s,
        worker=worker,
        finished_at=finished_at,
    )


def _describe(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return "is locked by another process; try again when it finishes"
    if "not a database" in text or "malformed" in text:
        return "is not an SQLite database (or it is corrupt)"
    return f"database error: {text}"
