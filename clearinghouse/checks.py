"""System checks for custody: real data must sit outside anything the web server serves."""

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, register


@register()
def data_dir_not_served(app_configs, **kwargs):
    errors = []
    data_dir = Path(settings.DATA_DIR).resolve()
    for name in ("STATIC_ROOT", "MEDIA_ROOT"):
        value = getattr(settings, name, None)
        if not value:
            continue
        served = Path(value).resolve()
        if data_dir == served or data_dir.is_relative_to(served) or served.is_relative_to(data_dir):
            errors.append(
                Error(f"DATA_DIR ({data_dir}) overlaps {name} ({served}).", id="clearinghouse.E001")
            )
    return errors
