"""Taking real datasets into custody."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from clearinghouse.errors import ApplicationError
from clearinghouse.custody import custody_remove, custody_write
from clearinghouse.models import SLUG_VALIDATOR, Dataset
from clearinghouse.schema import Schema, SchemaError
from clearinghouse.services.audit import audit_record
from clearinghouse.tabular import Source, TableError, read_csv_checked

__all__ = ["dataset_create"]


def _check_slug(slug: str) -> None:
    try:
        SLUG_VALIDATOR(slug)
    except DjangoValidationError as exc:
        raise ApplicationError(f"slug: {exc.messages[0]}", code="invalid_slug") from None
    if Dataset.objects.filter(slug=slug).exists():
        raise ApplicationError(f"A dataset with slug {slug!r} already exists.", code="duplicate_slug", status_code=409)


def _size(data: Source) -> int:
    """The source's size in bytes, without reading it."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return memoryview(data).nbytes
    if isinstance(data, os.PathLike):
        return os.stat(data).st_size
    size = getattr(data, "size", None)  # Django's File and UploadedFile know theirs
    if size is None:
        position = data.tell()
        size = data.seek(0, os.SEEK_END)
        data.seek(position)
    return int(size)


def dataset_create(*, slug: str, name: str, description: str = "", schema: Any, data: Source, by) -> Dataset:
    """Check ``data`` (a CSV: an uploaded file or another seekable binary file object, a path, or bytes)
    row by row against ``schema`` and take it into custody, or store nothing.

    The file is read in chunks (see ``clearinghouse.tabular.read_csv_checked``) and hashed on the
    way, so that only the typed table is held whole. Identifier columns are dropped before anything
    is written. The encrypted file is written first and removed again if the database row cannot be created.
    """
    _check_slug(slug)
    try:
        parsed = Schema.from_dict(schema)
    except SchemaError as exc:
        raise ApplicationError(f"The schema is invalid: {exc.problems[0]}" + (
            f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""),
            code="invalid_schema", details={"problems": exc.problems}) from None
    if _size(data) > settings.MAX_UPLOAD_BYTES:  # before a byte is read
        raise ApplicationError(f"The file is larger than the limit of {settings.MAX_UPLOAD_BYTES} bytes.",
                               code="upload_too_large", status_code=413)
    source_sha256 = hashlib.sha256()
    try:
        frame = read_csv_checked(data, parsed, max_failures=settings.UPLOAD_MAX_REPORTED_FAILURES,
                                 digest=source_sha256)
    except TableError as exc:
        raise ApplicationError(exc.message, code=exc.code, details=exc.details()) from None
    stored = custody_write(frame)
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                slug=slug,
                name=name,
                description=description,
                schema=parsed.to_dict(),
                n_rows=len(frame),
                n_columns=len(frame.columns),
                dropped_columns=list(parsed.identifiers),
                storage_name=stored.storage_name,
                stored_bytes=stored.stored_bytes,
                source_sha256=source_sha256.hexdigest(),
                created_by=by,
            )
            audit_record(action="dataset.upload", actor=by, object_type="dataset", object_id=slug,
                         details={"rows": dataset.n_rows, "columns": dataset.n_columns,
                                  "dropped_columns": dataset.dropped_columns})
    except IntegrityError:
        custody_remove(stored.storage_name)
        raise ApplicationError(f"A dataset with slug {slug!r} already exists.", code="duplicate_slug",
                               status_code=409) from None
    except BaseException:
        custody_remove(stored.storage_name)
        raise
    return dataset
