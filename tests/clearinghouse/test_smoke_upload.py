import pytest

from clearinghouse.custody import custody_read
from clearinghouse.models import AuditEvent, Dataset
from tests.conftest import last_event, upload_payload


@pytest.mark.django_db
def test_it_uploads_a_dataset_and_audits_it(clients, custodian):
    response = clients["custodian"].post("/api/v1/datasets/", upload_payload(), format="multipart")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["n_rows"] == 6 and body["n_columns"] == 10 and body["dropped_columns"] == ["pid"]
    dataset = Dataset.objects.get(slug="gbsg2-small")
    frame = custody_read(dataset.storage_name)
    assert list(frame.columns) == [c["name"] for c in body["schema"]["columns"] if c["type"] != "identifier"]
    assert frame["age"].tolist() == [70, 56, 58, 59, 73, 32]
    event = last_event()
    assert (event.action, event.outcome, event.object_id, event.actor_id) == ("dataset.upload", "success", "gbsg2-small", custodian[0].pk)


@pytest.mark.django_db
def test_it_refuses_an_out_of_bounds_row_and_stores_nothing(clients):
    bad = b"pid,horTh,age,menostat,tsize,tgrade,pnodes,progrec,estrec,time,cens\np1,no,170,Post,21,II,3,48,66,1814,1\n"
    response = clients["custodian"].post("/api/v1/datasets/", upload_payload(csv_bytes=bad), format="multipart")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "rows_failed_validation"
    assert error["details"]["failures"] == [{"row": 1, "column": "age", "reason": "above the schema's maximum 100"}]
    assert not Dataset.objects.exists()
    event = last_event()
    assert (event.action, event.outcome, event.details["code"]) == ("dataset.upload", "refused", "rows_failed_validation")
