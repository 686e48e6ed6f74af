"""Plugin hook specifications. Every hook has a one-line docstring (see docs/plugins.md)."""

import pluggy

hookspec = pluggy.HookspecMarker("kervan")
hookimpl = pluggy.HookimplMarker("kervan")


@hookspec
def register_field_types():
    """Return a list of FieldType classes to add to the field type registry."""


@hookspec
def before_save(kervan, entity, action, values, record, actor):
    """Called inside the write transaction before a record is written; may adjust values."""


@hookspec
def after_save(kervan, entity, action, record, changes, actor, connection):
    """Called inside the write transaction after a record is written and audited."""


@hookspec
def metadata_layers(kervan):
    """Return extra metadata directories (Path) to merge after the base and configured ones."""


@hookspec
def register_routes(app):
    """Add blueprints or routes to the Flask app."""


@hookspec
def after_transition(kervan, entity, record, from_stage, to_stage, actor, connection):
    """Called inside the transaction after a record moved to another stage."""


@hookspec
def workflow_action(kervan, name, entity, record, actor, connection):
    """Run the named `hook:` action of a pipeline (inside the transition's transaction)."""
