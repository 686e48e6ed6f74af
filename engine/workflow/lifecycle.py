"""The customer lifecycle: segments recomputed from sales and activity (a scheduled job)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from engine.records.actor import SYSTEM


def _aware(moment):
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    if isinstance(moment, dt.date) and not isinstance(moment, dt.datetime):
        moment = dt.datetime(moment.year, moment.month, moment.day)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def recompute_lifecycles(kervan, now: dt.datetime | None = None) -> dict[str, int]:
    """Apply every declared lifecycle; returns how many records changed per lifecycle."""
    now = now or dt.datetime.now(dt.UTC)
    changed: dict[str, int] = {}
    for key, spec in kervan.model.documents.get("lifecycles", {}).items():
        changed[key] = _recompute(kervan, spec, now)
    return changed


def _recompute(kervan, spec: dict, now: dt.datetime) -> int:
    model = kervan.model
    entity = model.entity(spec["entity"])
    table = kervan.records.table(entity)
    sales: dict[int, int] = {}
    last: dict[int, dt.datetime] = {}
    with kervan.db.connect() as conn:
        rel = spec.get("sales")
        if rel:
            other = model.entity(rel["entity"])
            t = kervan.records.table(other)
            stmt = sa.select(t.c[rel["link"]], sa.func.count()).where(
                t.c[rel["link"]].is_not(None), t.c.archived_at.is_(None))
            if rel.get("category"):
                field = kervan.workflow.stage_field(other)
                keys = [o.key for o in other.fields[field].options
                        if o.category == rel["category"]]
                stmt = stmt.where(t.c[field].in_(keys))
            for owner_id, count in conn.execute(stmt.group_by(t.c[rel["link"]])):
                sales[owner_id] = count
        for rel in spec.get("activity") or []:
            other = model.entity(rel["entity"])
            t = kervan.records.table(other)
            column = t.c[rel.get("field", "updated_at")]
            for owner_id, moment in conn.execute(
                    sa.select(t.c[rel["link"]], sa.func.max(column))
                    .where(t.c[rel["link"]].is_not(None)).group_by(t.c[rel["link"]])):
                moment = _aware(moment)
                if moment and (owner_id not in last or moment > last[owner_id]):
                    last[owner_id] = moment
        rows = conn.execute(sa.select(table.c.id, table.c[spec["field"]],
                                      table.c.created_at)
                            .where(table.c.archived_at.is_(None))).all()
    changed = 0
    activity_field = spec.get("activity_field")
    for record_id, segment, created_at in rows:
        count = sales.get(record_id, 0)
        latest = last.get(record_id) or _aware(created_at)
        idle = (now - latest).days if latest else 0
        target = next((r["segment"] for r in spec["rules"] if _matches(r, count, idle)), None)
        values = {}
        if target and target != segment:
            values[spec["field"]] = target
        if activity_field and record_id in last:
            values[activity_field] = last[record_id]
        if values:
            current = kervan.records.get(entity.key, record_id, with_lines=False)
            if activity_field in values and current.get(activity_field) == values[activity_field]:
                values.pop(activity_field)
            if values:
                kervan.records.update(entity.key, record_id, values, version=current["version"],
                                      actor=SYSTEM)
                changed += 1 if spec["field"] in values else 0
    return changed


def _matches(rule: dict, sales: int, idle_days: int) -> bool:
    if "min_sales" in rule and sales < rule["min_sales"]:
        return False
    if "max_sales" in rule and sales > rule["max_sales"]:
        return False
    return not ("inactive_days" in rule and idle_days < rule["inactive_days"])
