"""Start Label Studio on 0.0.0.0:8080, one replica at a time when they share PostgreSQL.

Every replica applies the database migrations and creates the admin user when it starts. Two
replicas doing that at once on a fresh database race (duplicate tables, duplicate users), so
a replica holds a PostgreSQL advisory lock from before its start until it answers `/health`;
the next one then finds the work done. With SQLite (one replica) there is nothing to share.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

PORT = 8080
# Any fixed number: the lock only has to be the same for every replica of one database.
LOCK_KEY = 2338019


def startup_lock() -> Any:
    if os.environ.get("DJANGO_DB") != "default":
        return None
    import psycopg  # Label Studio's own PostgreSQL driver

    while True:
        try:
            connection = psycopg.connect(
                host=os.environ["POSTGRE_HOST"],
                port=os.environ.get("POSTGRE_PORT", "5432"),
                dbname=os.environ["POSTGRE_NAME"],
                user=os.environ["POSTGRE_USER"],
                password=os.environ["POSTGRE_PASSWORD"],
                connect_timeout=5,
                autocommit=True,
            )
            break
        except psycopg.OperationalError as error:
            print(f"waiting for PostgreSQL: {str(error).strip()}", flush=True)
            time.sleep(2)
    # Polled, never waited for in a statement: a replica blocked in pg_advisory_lock is a
    # running transaction, and the migrations' CREATE INDEX CONCURRENTLY waits for every
    # running transaction to end, so the lock's holder would never finish its start.
    print("waiting for the other replicas' start", flush=True)
    while not connection.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
        time.sleep(2)
    return connection


def healthy() -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def main() -> int:
    lock = startup_lock()
    server = subprocess.Popen(
        [
            "label-studio",
            "start",
            "--no-browser",
            "--internal-host",
            "0.0.0.0",
            "-p",
            str(PORT),
            *sys.argv[1:],
        ]
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, _f: server.send_signal(s))
    while lock is not None and server.poll() is None:
        if healthy():
            lock.close()  # the next replica may start
            lock = None
        else:
            time.sleep(1)
    return server.wait()


if __name__ == "__main__":
    sys.exit(main())
