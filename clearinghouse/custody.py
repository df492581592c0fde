"""The one module that writes and reads real rows at rest.

Real data are stored as Parquet, encrypted with Fernet (AES-128-CBC + HMAC-SHA256)
under ``DATA_ENCRYPTION_KEYS`` (the first key encrypts, all decrypt, so keys can be
rotated), in ``CUSTODY_DIR`` (mode 0700, files 0600), outside any served directory.
Nothing outside this module opens those files, and no API serializer ever receives
the frame this module returns.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from cryptography.fernet import InvalidToken, MultiFernet, Fernet
from django.conf import settings

__all__ = [
    "CustodyError", "StoredTable", "custody_open_folder", "custody_read", "custody_remove", "custody_seal_folder",
    "custody_write",
]


class CustodyError(RuntimeError):
    """A stored file is missing, or cannot be decrypted with any configured key."""


@dataclass(frozen=True)
class StoredTable:
    storage_name: str
    stored_bytes: int


def _cipher() -> MultiFernet:
    return MultiFernet([Fernet(key.encode("ascii")) for key in settings.DATA_ENCRYPTION_KEYS])


def _folder() -> Path:
    folder = Path(settings.CUSTODY_DIR)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def _path(storage_name: str) -> Path:
    if not storage_name or "/" in storage_name or "\\" in storage_name or storage_name.startswith("."):
        raise CustodyError("Invalid storage name.")
    return _folder() / storage_name


def custody_write(frame: pd.DataFrame) -> StoredTable:
    """Encrypt and store ``frame``; the file appears whole or not at all (write, fsync, rename)."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow", compression="zstd")
    token = _cipher().encrypt(buffer.getvalue())
    storage_name = f"{uuid.uuid4().hex}.parquet.fernet"
    final = _path(storage_name)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(token)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return StoredTable(storage_name=storage_name, stored_bytes=len(token))


def custody_read(storage_name: str) -> pd.DataFrame:
    """Decrypt and load a stored table (for the generator and verification services only)."""
    path = _path(storage_name)
    try:
        token = path.read_bytes()
    except FileNotFoundError:
        raise CustodyError(f"The stored file {storage_name} is missing.") from None
    try:
        plain = _cipher().decrypt(token)
    except InvalidToken:
        raise CustodyError(f"The stored file {storage_name} cannot be decrypted with the configured keys.") from None
    return pd.read_parquet(io.BytesIO(plain), engine="pyarrow")


def custody_remove(storage_name: str) -> None:
    _path(storage_name).unlink(missing_ok=True)


# --- folders derived from real rows (trained generators) ---------------------------------
# A generator fitted on real rows holds values of them (a copula's quantile points, a GMM's
# means), so its checkpoint is encrypted at rest like the table itself.
SEALED_SUFFIX = ".fernet"


def custody_seal_folder(source: Path, target: Path) -> int:
    """Encrypt every file of ``source`` into ``target`` (staged next to it, then renamed: whole
    or absent). Returns the bytes written."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    cipher, total = _cipher(), 0
    try:
        for path in sorted(source.iterdir()):
            token = cipher.encrypt(path.read_bytes())
            sealed = staging / (path.name + SEALED_SUFFIX)
            with open(sealed, "wb") as handle:
                handle.write(token)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(sealed, 0o600)
            total += len(token)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return total


def custody_open_folder(source: Path, target: Path) -> None:
    """Decrypt a sealed folder into ``target`` (a private temporary folder the caller removes)."""
    if not source.is_dir():
        raise FileNotFoundError(source)
    cipher = _cipher()
    target.mkdir(mode=0o700, exist_ok=True)
    for path in sorted(source.glob("*" + SEALED_SUFFIX)):
        try:
            plain = cipher.decrypt(path.read_bytes())
        except InvalidToken:
            raise CustodyError(f"{path.name} cannot be decrypted with the configured keys.") from None
        out = target / path.name[: -len(SEALED_SUFFIX)]
        out.write_bytes(plain)
        os.chmod(out, 0o600)
