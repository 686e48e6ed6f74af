"""Semantic checks of pipelines, conversions, templates and lifecycles."""

from __future__ import annotations

from engine.definitions.model import Model
from engine.definitions.problems import Problem
from engine.query.conditions import check_condition


def _list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def workflow_problems(model: Model, merged: dict) -> list[Problem]:
    problems: list[Problem] = []
    roles = set(merged.get("roles", {}))
    templates = merged.get("templates", {})

    def add(doc, key, path, message):
        problems.append(Problem(doc.origin_of(key) if hasattr(doc, "origin_of") else None,
                                path, message))

    def check_actions(doc, key, path, entity, actions):
        for index, action in enumerate(actions or []):
            kind, spec = next(iter(action.items()))
            where = f"{path}.{index}.{kind}"
            if kind == "set":
                for name in spec:
                    if name not in entity.fields:
                        add(doc, key, where, f"{entity.key} has no field {name!r}")
            elif kind == "create":
                target = spec.get("entity") or templates.get(spec.get("template", ""), {}).get(
                    "entity")
                if spec.get("template") and spec["template"] not in templates:
                    add(doc, key, where, f"template {spec['template']!r} does not exist")
                elif target not in model.entities:
                    add(doc, key, where, f"entity {target!r} does not exist")
                else:
                    for name in spec.get("values") or {}:
                        if name not in model.entities[target].fields:
                            add(doc, key, where, f"{target} has no field {name!r}")
            elif kind == "task":
                task = model.entities.get(spec.get("entity", "task"))
                if task is None:
                    add(doc, key, where, f"entity {spec.get('entity', 'task')!r} does not exist")
            elif kind == "transition":
                link = entity.fields.get(spec["link"])
                if link is None or link.type != "link":
                    add(doc, key, where, f"{entity.key}.{spec['link']} is not a link field")
                else:
                    target = model.entities[link.target]
                    field = next((p.get("field") for p in merged.get("pipelines", {}).values()
                                  if p.get("entity") == target.key), target.stage_field)
                    if not field or spec["to"] not in target.fields[field].option_keys:
                        add(doc, key, where, f"{spec['to']!r} is not a stage of {target.key}")
            elif kind == "notify":
                for role in _list(spec.get("roles")):
                    if role not in roles:
                        add(doc, key, where, f"role {role!r} does not exist")

    pipelines = merged.get("pipelines", {})
    for key, pipe in pipelines.items():
        path = f"pipelines.{key}"
        entity = model.entities.get(pipe["entity"])
        if entity is None:
            add(pipelines, key, path, f"entity {pipe['entity']!r} does not exist")
            continue
        field_key = pipe.get("field") or entity.stage_field
        field = entity.fields.get(field_key or "")
        if field is None or field.type != "enum":
            add(pipelines, key, path, f"{entity.key}.{field_key} must be an enum field (the "
                                      f"stages)")
            continue
        stages = set(field.option_keys)
        for stage, spec in (pipe.get("stages") or {}).items():
            where = f"{path}.stages.{stage}"
            if stage not in stages:
                add(pipelines, key, where, f"{stage!r} is not a stage of {entity.key}.{field.key} "
                                           f"({', '.join(field.option_keys)})")
            for name in _list(spec.get("requires")):
                if name not in entity.fields:
                    add(pipelines, key, where, f"requires unknown field {name!r}")
            check_actions(pipelines, key, f"{where}.on_enter", entity, spec.get("on_enter"))
            check_actions(pipelines, key, f"{where}.on_leave", entity, spec.get("on_leave"))
        for index, transition in enumerate(pipe.get("transitions") or []):
            where = f"{path}.transitions.{index}"
            for stage in [*_list(transition.get("from")), transition["to"]]:
                if stage != "*" and stage not in stages:
                    add(pipelines, key, where, f"{stage!r} is not a stage of {entity.key}")
            for role in _list(transition.get("roles")):
                if role not in roles:
                    add(pipelines, key, where, f"role {role!r} does not exist")
            for name in _list(transition.get("requires")):
                if name not in entity.fields:
                    add(pipelines, key, where, f"requires unknown field {name!r}")
            if transition.get("when"):
                for message in check_condition(entity, transition["when"]):
                    add(pipelines, key, where, message)
            check_actions(pipelines, key, f"{where}.actions", entity, transition.get("actions"))
    seen: dict[str, str] = {}
    for key, pipe in pipelines.items():
        if pipe["entity"] in seen:
            add(pipelines, key, f"pipelines.{key}",
                f"{pipe['entity']} already has pipeline {seen[pipe['entity']]!r}; one entity has "
                f"one pipeline (a pack overlays it by its key)")
        seen[pipe["entity"]] = key

    conversions = merged.get("conversions", {})
    for key, conversion in conversions.items():
        path = f"conversions.{key}"
        source = model.entities.get(conversion["source"])
        if source is None:
            add(conversions, key, path, f"entity {conversion['source']!r} does not exist")
            continue
        for step in conversion["create"]:
            target = model.entities.get(step["entity"])
            if target is None:
                add(conversions, key, path, f"entity {step['entity']!r} does not exist")
                continue
            for name in [*(step.get("values") or {}), *(step.get("match") or [])]:
                if name not in target.fields:
                    add(conversions, key, path, f"{target.key} has no field {name!r}")
        for name in conversion.get("set") or {}:
            if name not in source.fields:
                add(conversions, key, path, f"{source.key} has no field {name!r}")

    for key, template in templates.items():
        entity = model.entities.get(template["entity"])
        if entity is None:
            add(templates, key, f"templates.{key}", f"entity {template['entity']!r} does not exist")
            continue
        for name in [*(template.get("values") or {}), *(template.get("lines") or {})]:
            if name not in entity.fields:
                add(templates, key, f"templates.{key}", f"{entity.key} has no field {name!r}")

    lifecycles = merged.get("lifecycles", {})
    for key, life in lifecycles.items():
        path = f"lifecycles.{key}"
        entity = model.entities.get(life["entity"])
        field = entity.fields.get(life["field"]) if entity else None
        if field is None or field.type != "enum":
            add(lifecycles, key, path, f"{life['entity']}.{life['field']} must be an enum field")
            continue
        for rule in life["rules"]:
            if rule["segment"] not in field.option_keys:
                add(lifecycles, key, path, f"{rule['segment']!r} is not an option of "
                                           f"{entity.key}.{field.key}")
        for rel in [life.get("sales") or {}, *(life.get("activity") or [])]:
            other = model.entities.get(rel.get("entity", ""))
            if rel and (other is None or rel["link"] not in other.fields
                        or (rel.get("field") and rel["field"] not in other.fields)):
                add(lifecycles, key, path, f"{rel.get('entity')}.{rel.get('link')} / "
                                           f"{rel.get('field')} does not exist")
    return problems
