"""dataset_create with a file: the size limit is applied before a byte is read, and a file object, a path
and bytes are taken alike."""

from __future__ import annotations

import hashlib
import io

import pytest

from clearinghouse.errors import ApplicationError
from clearinghouse.models import Dataset
from clearinghouse.services.datasets import dataset_create
from tests.clearinghouse.conftest import custody_files
from tests.conftest import DATA, GBSG2_SCHEMA

pytestmark = pytest.mark.django_db

CSV = (DATA / "gbsg2_small.csv").read_bytes()


class Unreadable(io.BytesIO):
    """A file whose content must not be read."""

    def read(self, *args):
        raise AssertionError("the file was read")


@pytest.fixture(autouse=True)
def custody(settings, tmp_path):
    settings.CUSTODY_DIR = tmp_path / "custody"


def test_a_file_over_the_limit_is_refused_with_413_before_it_is_read(custodian, settings):
    settings.MAX_UPLOAD_BYTES = len(CSV) - 1
    with pytest.raises(ApplicationError) as caught:
        dataset_create(slug="big", name="Big", schema=GBSG2_SCHEMA, data=Unreadable(CSV), by=custodian[0])
    assert (caught.value.status_code, caught.value.code) == (413, "upload_too_large")
    assert f"limit of {len(CSV) - 1} bytes" in caught.value.message
    assert not Dataset.objects.exists() and custody_files() == set()


@pytest.mark.parametrize("kind", ["file object", "path", "bytes"])
def test_a_file_object_a_path_and_bytes_are_taken_alike(custodian, tmp_path, kind):
    path = tmp_path / "cohort.csv"
    path.write_bytes(CSV)
    data = {"file object": io.BytesIO(CSV), "path": path, "bytes": CSV}[kind]
    dataset = dataset_create(slug="gbsg2", name="GBSG2", schema=GBSG2_SCHEMA, data=data, by=custodian[0])
    assert (dataset.n_rows, dataset.n_columns) == (6, 10)
    assert dataset.source_sha256 == hashlib.sha256(CSV).hexdigest()
    assert custody_files() == {dataset.storage_name}
