"""docs/kinds.md is written from the kinds' own descriptions and is kept current."""

from pathlib import Path

from verification.core.catalog import markdown
from verification.core.kinds import KINDS

DOC = Path(__file__).resolve().parents[3] / "docs" / "kinds.md"


def test_the_kinds_page_is_current():
    assert DOC.read_text(encoding="utf-8") == markdown(), "run: python -m verification.core.catalog > docs/kinds.md"


def test_it_lists_every_kind_with_its_description():
    page = markdown()
    for name, kind in KINDS.items():
        assert f"| `{name}` | {kind.description} |" in page
