"""Issue 14, finding 2: spreadsheet formulas planted in the audit log or a release's categories.

Anyone can plant a formula: an anonymous ``GET /api/v1/datasets/=HYPERLINK(...)/`` puts it in the refusal's
object_id, a client's ``X-Request-ID`` in request_id, a custodian's category in a release's data.csv.
"""

from __future__ import annotations

import pytest
from django.test import Client

from clearinghouse.models import AuditEvent
from tests.conftest import last_event


@pytest.mark.django_db
@pytest.mark.parametrize("supplied", ["-A1.A1.A1", ".A1+A1.A1", "_cmd.exe.x"])
def test_a_request_id_that_does_not_start_with_a_letter_or_digit_is_replaced(supplied):
    before = AuditEvent.objects.count()
    response = Client().get("/api/v1/datasets/", HTTP_X_REQUEST_ID=supplied)
    assert response.status_code == 401
    generated = response["X-Request-ID"]
    assert generated != supplied and len(generated) == 32 and generated.isalnum()
    assert AuditEvent.objects.count() == before + 1
    assert last_event().request_id == generated


@pytest.mark.django_db
def test_a_well_formed_request_id_is_kept_in_the_audit_row():
    response = Client().get("/api/v1/datasets/", HTTP_X_REQUEST_ID="A1-trace.0001_x")
    assert response["X-Request-ID"] == "A1-trace.0001_x"
    assert last_event().request_id == "A1-trace.0001_x"
