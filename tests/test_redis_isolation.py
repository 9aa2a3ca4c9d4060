"""Each pytest-xdist worker owns its Redis databases (tests/conftest.py `redis_db_url`). A test
that names a database number itself shares it with another worker, whose Celery workers then
take and drop its messages: jobs stay queued and a random test times out. This guard keeps
every database number in conftest."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).parent
# "redis://host:port/11", or a suffix glued on: + "/11"
FIXED_DB = re.compile(r"""redis://[^"'\s]*:\d+/\d+|\+\s*["']/\d+["']""")
ALLOWED = {
    # the compose file's URL, checked as text
    ("test_compose.py", "redis://redis:6379/0"),
}


def fixed_redis_databases() -> list[str]:
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.name in ("conftest.py", Path(__file__).name) and path.parent == TESTS:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for hit in FIXED_DB.findall(line):
                if (path.name, hit) not in ALLOWED and not hit.endswith("/0"):
                    found.append(f"{path.relative_to(TESTS)}:{n}: {hit}")
    return found


def test_no_test_names_a_redis_database_number() -> None:
    assert fixed_redis_databases() == []


def test_the_guard_finds_a_fixed_database() -> None:
    assert FIXED_DB.findall('url = base + "/11"') == ['+ "/11"']
    assert FIXED_DB.findall("redis://127.0.0.1:6379/13") == ["redis://127.0.0.1:6379/13"]
