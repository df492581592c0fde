"""Refuse uploads over ``MAX_UPLOAD_BYTES`` while they stream in, before they are spooled whole."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from rest_framework import status
from rest_framework.exceptions import APIException


class UploadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "upload_too_large"

    def __init__(self, limit: int):
        super().__init__(f"The upload is larger than the limit of {limit} bytes (MAX_UPLOAD_BYTES).")


class SizeLimitedUploadHandler(FileUploadHandler):
    """First in the handler chain: counts bytes and passes chunks on unchanged."""

    def __init__(self, request=None):
        super().__init__(request)
        self.limit = settings.MAX_UPLOAD_BYTES
        self.received = 0

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > self.limit + 64 * 1024:  # room for form fields
            raise UploadTooLarge(self.limit)
        return None

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            raise UploadTooLarge(self.limit)
        return raw_data

    def file_complete(self, file_size):
        return None
