"""Languages: Turkish, Persian (right to left, Jalali calendar, Persian digits) and English.

`formats` writes numbers, money and dates the reader's way; `jalali` and `calendar` bring
the Solar Hijri calendar; `numerals` the digit sets; `text` Turkish-aware search folding;
`messages` engine messages in the user's language; `catalog` the gettext catalogs
(`python -m engine.i18n.catalog update|check`). Nothing here depends on Flask requests:
engine.web.display binds these to the signed-in user's language.
"""
