"""Issue 14, finding 4: a hostile CSV header (10^5 columns) is refused in one linear pass, with a small body.

The header check used ``header.count(h)`` per column (347 s for 10^5 columns) and listed every
column in the refusal (789 kB). No timing is asserted here; bench/upload_header.py times it.
"""

from __future__ import annotations

import pytest

from clearinghouse.schema import MAX_COLUMNS, Schema
from clearinghouse.tabular import TableError, _check_header
from tests.clearinghouse.test_datasets_api import assert_refused, data_dir, post  # noqa: F401 (fixture)
from tests.conftest import GBSG2_SCHEMA, upload_payload

WIDE = 100_000
BODY_LIMIT = 8 * 1024


def wide_csv(n: int = WIDE) -> bytes:
    header = ",".join(f"c{i:06d}" for i in range(n))
    return (header + "\n" + ",".join("1" for _ in range(n)) + "\n").encode()


@pytest.mark.django_db
def test_a_100k_column_upload_is_refused_with_a_small_body_and_nothing_stored(clients, custodian):
    content = wide_csv()
    assert len(content) > 600_000
    response = post(clients["custodian"], upload_payload(csv_bytes=content))
    assert len(response.content) < BODY_LIMIT, len(response.content)
    assert_refused(response, 400, "bad_header", f"{WIDE} columns", f"at most {MAX_COLUMNS}", actor=custodian[0])


def test_the_schema_check_is_linear_and_lists_a_bounded_number_of_names():
    # Called directly (below the width cap, with 10^5 names) so the Counter path itself is exercised.
    header = [f"x{i:06d}" for i in range(WIDE)] + ["y" * 10_000]
    with pytest.raises(TableError) as caught:
        _check_header(header, Schema.from_dict(GBSG2_SCHEMA))
    message = caught.value.message
    assert caught.value.code == "bad_header"
    assert len(message.encode()) < BODY_LIMIT, len(message)
    assert "x000000, x000001" in message and f"(and {WIDE + 1 - 20} more)" in message
    assert "missing column(s) pid, horTh" in message


def test_repeated_names_are_found_in_one_pass_and_listed_bounded():
    header = [f"d{i % 50_000:05d}" for i in range(WIDE)]
    with pytest.raises(TableError) as caught:
        _check_header(header, Schema.from_dict(GBSG2_SCHEMA))
    assert caught.value.message.startswith("The header repeats column(s): d00000, d00001")
    assert "(and 49980 more)." in caught.value.message
    assert len(caught.value.message) < BODY_LIMIT
