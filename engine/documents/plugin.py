"""The engine's own plugin that keeps document totals right on every save."""

from __future__ import annotations

import sqlalchemy as sa

from engine.hookspecs import hookimpl
from engine.records.errors import ValidationFailed

from .totals import compute, document_currency


def _money(value, currency):
    return {"amount": value, "currency": currency}


class DocumentTotals:
    @hookimpl
    def after_save(self, kervan, entity, action, record, changes, actor, connection):
        """Recompute line totals and document totals inside the same transaction."""
        spec = entity.totals_spec
        if not spec:
            return
        records = kervan.records
        field = entity.fields[spec["lines"]]
        child = kervan.model.entity(field.spec["entity"])
        lines = records._lines(connection, entity, field, record["id"])
        currency = document_currency(record, spec) or kervan.settings.currencies[0]
        mismatched = {f"{spec['lines']}.{i}.{spec['price']}":
                      f"is in {line[spec['price']]['currency']} but the document is in {currency}"
                      for i, line in enumerate(lines)
                      if isinstance(line.get(spec["price"]), dict)
                      and line[spec["price"]]["currency"] != currency}
        if mismatched:
            raise ValidationFailed(entity.key, mismatched)
        totals = compute(lines, spec, record.get(spec.get("document_discount")), currency)
        line_table = records.table(child)
        total_field = child.fields[spec["line_total"]]
        for line, value in zip(lines, totals.line_totals, strict=True):
            stored = total_field.field_type.to_storage(total_field, _money(value, currency))
            current = line.get(spec["line_total"])
            if current != total_field.field_type.coerce(total_field, _money(value, currency)):
                connection.execute(sa.update(line_table).where(line_table.c.id == line["id"])
                                   .values(stored))
        values = {}
        for key, amount in (("subtotal", totals.subtotal),
                            ("discount_total", totals.discount_total),
                            ("vat_total", totals.vat_total), ("grand_total", totals.grand_total)):
            target = spec.get(key)
            if target:
                fld = entity.fields[target]
                values.update(fld.field_type.to_storage(fld, _money(amount, currency)))
        if spec.get("balance"):
            paid = record.get(spec.get("paid", ""))
            paid_amount = paid["amount"] if isinstance(paid, dict) else (paid or 0)
            fld = entity.fields[spec["balance"]]
            values.update(fld.field_type.to_storage(fld, _money(totals.grand_total - paid_amount,
                                                                currency)))
        table = records.table(entity)
        connection.execute(sa.update(table).where(table.c.id == record["id"]).values(values))
        for other in kervan.model.entities.values():
            for field_ in other.user_fields.values():
                rollup = field_.spec.get("rollup")
                if rollup and rollup["entity"] == entity.key and record.get(rollup["link"]):
                    refresh_rollup(kervan, connection, other, field_, record[rollup["link"]])


class Rollups:
    @hookimpl
    def after_save(self, kervan, entity, action, record, changes, actor, connection):
        """Keep `rollup:` fields (an invoice's paid amount) in step with related records."""
        for target in kervan.model.entities.values():
            for field in target.user_fields.values():
                rollup = field.spec.get("rollup")
                if not rollup or rollup["entity"] != entity.key:
                    continue
                ids = {record.get(rollup["link"])}
                if changes and rollup["link"] in changes:
                    ids.add(changes[rollup["link"]][0])
                for target_id in ids - {None}:
                    refresh_rollup(kervan, connection, target, field, target_id)


def refresh_rollup(kervan, connection, target, field, target_id: int) -> None:
    from engine.query.conditions import to_sql

    rollup = field.spec["rollup"]
    other = kervan.model.entity(rollup["entity"])
    table = kervan.records.table(other)
    summed = other.fields[rollup["sum"]]
    target_table = kervan.records.table(target)
    row = connection.execute(sa.select(target_table).where(target_table.c.id == target_id)
                             ).mappings().first()
    if row is None:
        return
    stmt = sa.select(sa.func.sum(table.c[summed.key])).where(
        table.c[rollup["link"]] == target_id, table.c.archived_at.is_(None))
    if rollup.get("where"):
        stmt = stmt.where(to_sql(other, rollup["where"], table))
    currency = None
    if field.type == "money":
        currency = row.get(f"{field.key}__currency") or field.spec.get("currency")
        spec = target.totals_spec
        if spec and spec.get("currency"):
            currency = document_currency(row, spec) or currency
        if summed.type == "money" and currency:  # amounts in other currencies are not added
            stmt = stmt.where(table.c[f"{summed.key}__currency"] == currency)
    total = connection.execute(stmt).scalar() or 0
    value = {"amount": total, "currency": currency} if field.type == "money" else total
    values = field.field_type.to_storage(field, field.field_type.coerce(field, value))
    spec = target.totals_spec
    if spec and spec.get("paid") == field.key and spec.get("balance") and spec.get("grand_total"):
        grand = row.get(spec["grand_total"]) or 0
        balance_field = target.fields[spec["balance"]]
        values.update(balance_field.field_type.to_storage(balance_field, {
            "amount": grand - (total or 0), "currency": currency}))
    connection.execute(sa.update(target_table).where(target_table.c.id == target_id)
                       .values(values))
    # a rollup of a rollup (an account's open balance sums its invoices' balances)
    for other in kervan.model.entities.values():
        for field_ in other.user_fields.values():
            spec_ = field_.spec.get("rollup")
            if spec_ and spec_["entity"] == target.key:
                parent_id = connection.execute(sa.select(target_table.c[spec_["link"]]).where(
                    target_table.c.id == target_id)).scalar()
                if parent_id is not None:
                    refresh_rollup(kervan, connection, other, field_, parent_id)
