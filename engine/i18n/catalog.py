"""The message catalogs: extract every UI string, merge it into tr/fa/en, compile .mo,
and check that nothing is missing or untranslated.

    python -m engine.i18n.catalog update   # extract, merge, compile
    python -m engine.i18n.catalog check    # what tests/test_i18n.py asserts
"""

from __future__ import annotations

import importlib
import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "engine" / "translations"
LANGUAGES = ("en", "tr", "fa")
#: Languages whose every entry needs a translation of its own (English is the source).
TRANSLATED = ("tr", "fa")
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None}
#: Message tables passed to gettext by key at run time, which extraction cannot see.
DYNAMIC_TABLES = ("engine.web.listview:OP_WORDS", "engine.web.ui_extra:MODULE_LABELS",
                  "engine.web.record_view:TAB_LABELS")
#: Entries that read the same in every language.
SAME_IN_EVERY_LANGUAGE = frozenset({"Kervan", "%(size)s KB", "%(field)s: %(period)s",
                                    "%(field)s %(op)s %(value)s"})


def extract() -> Catalog:
    """Every UI string: gettext calls in engine/**.py and ui_templates/, and dynamic tables."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    catalog = Catalog(project="Kervan", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
            ROOT, method_map, options_map, keywords=KEYWORDS, comment_tags=("NOTE:",),
            strip_comment_tags=True):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments,
                    context=context)
    for ref in DYNAMIC_TABLES:
        module, _, name = ref.partition(":")
        for message in getattr(importlib.import_module(module), name).values():
            catalog.add(message, None, [(module.replace(".", "/") + ".py", 0)])
    return catalog


def po_path(language: str) -> Path:
    return TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"


def read(language: str) -> Catalog:
    with po_path(language).open("rb") as f:
        return read_po(f, locale=language)


def compiled(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    return buffer.getvalue()


def update(template: Catalog | None = None) -> None:
    """Merge the extracted strings into each language's .po and compile its .mo."""
    template = template or extract()
    for language in LANGUAGES:
        path = po_path(language)
        path.parent.mkdir(parents=True, exist_ok=True)
        catalog = read(language) if path.exists() else Catalog(
            locale=language, project="Kervan", copyright_holder="Kervan",
            creation_date=template.creation_date, revision_date=template.creation_date)
        created = catalog.creation_date
        catalog.update(template, no_fuzzy_matching=True, update_creation_date=False)
        catalog.creation_date = created  # keep the header still between runs
        catalog.fuzzy = False
        with path.open("wb") as f:
            write_po(f, catalog, width=100, ignore_obsolete=True, include_lineno=False)
        path.with_suffix(".mo").write_bytes(compiled(read(language)))


def untranslated(template: Catalog | None = None) -> list[str]:
    """UI strings missing from a catalog, or left untranslated in tr/fa, one line each."""
    template = template or extract()
    found = []
    for language in LANGUAGES:
        path = po_path(language)
        if not path.exists():
            found.append(f"{path.relative_to(ROOT)} is missing")
            continue
        catalog = read(language)
        for message in template:
            if not message.id:
                continue
            entry = catalog.get(message.id)
            if entry is None:
                found.append(f"{language}: {message.id!r} is not in the catalog "
                             f"({message.locations[0][0]})")
            elif language in TRANSLATED and (not entry.string or entry.fuzzy or (
                    entry.string == entry.id and entry.id not in SAME_IN_EVERY_LANGUAGE)):
                found.append(f"{language}: {message.id!r} is untranslated")
    return found


def stale_compiled() -> list[str]:
    """Compiled .mo files that are missing or hold other translations than their .po
    compiles to. The translations are compared, not the bytes: a .mo's header names the
    Babel version that wrote it, so a newer Babel would otherwise call every catalog
    stale."""
    found = []
    for language in LANGUAGES:
        path = po_path(language)
        mo = path.with_suffix(".mo")
        if not path.exists():
            continue
        if not mo.exists() or _translations(io.BytesIO(mo.read_bytes())) != _translations(
                io.BytesIO(compiled(read(language)))):
            found.append(f"{mo.relative_to(ROOT)} is not compiled from its .po")
    return found


def _translations(mo: io.BytesIO) -> dict:
    """What a compiled catalog says: each message (with its context) and its text."""
    return {(m.context, m.id if isinstance(m.id, str) else tuple(m.id)):
            m.string if isinstance(m.string, str) else tuple(m.string)
            for m in read_mo(mo) if m.id}


def problems() -> list[str]:
    return untranslated() + stale_compiled()


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "update":
        update()
    found = problems()
    for line in found:
        print(line)
    return 1 if found and command == "check" else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
