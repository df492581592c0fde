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
        self.earlier_files = []  # files the other handlers completed for earlier parts

    def _others(self):
        return [h for h in getattr(self.request, "upload_handlers", ()) if h is not self]

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > self.limit + 64 * 1024:  # room for form fields
            raise UploadTooLarge(self.limit)
        return None

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        # Called before the other handlers start this part: their ``file`` is still the previous part's.
        self.earlier_files.extend(f for h in self._others() if (f := getattr(h, "file", None)) is not None)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self._discard_spooled()
            raise UploadTooLarge(self.limit)
        return raw_data

    def _discard_spooled(self):
        """Django does not tell the handlers that an upload was abandoned by an exception: the plaintext
        already spooled to UPLOAD_TEMP_DIR (this part's and earlier parts') would stay on disk as long as
        the request lives. Remove it now."""
        for handler in self._others():
            handler.upload_interrupted()
        for file in self.earlier_files:
            try:
                file.close()  # a TemporaryUploadedFile is deleted when closed
            except OSError:
                pass
        self.earlier_files.clear()

    def file_complete(self, file_size):
        return None
