"""The submit statement, built and compiled for the first time by many threads at once
in a fresh process (an API's first burst of requests), comes out whole in every
thread: one SQL text, selecting from the inserted rows alone."""

from __future__ import annotations

import subprocess
import sys

PROCESSES = 12

FIRST_USE = """
import threading
from sqlalchemy.dialects import postgresql
from core.jobs import submit

ready = threading.Barrier(16)
texts = []

def compile_it():
    ready.wait()
    statement = submit._insert_job_statement()
    texts.append(str(statement.compile(dialect=postgresql.dialect())))

threads = [threading.Thread(target=compile_it) for _ in range(16)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(len(set(texts)), sum("FROM inserted, jobs" in text for text in texts))
"""


def test_the_submit_statement_is_whole_when_threads_first_use_it_together() -> None:
    # The race this guards against hit about one fresh process in eight.
    for _ in range(PROCESSES):
        done = subprocess.run(
            [sys.executable, "-c", FIRST_USE], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["1", "0"], done.stdout
