"""The `kervan` command line."""

from __future__ import annotations

import sys

import click

from .definitions.problems import MetadataError
from .runtime import Kervan


def _kervan() -> Kervan:
    """The runtime for this command; its connections close when the command ends."""
    kervan = Kervan()
    click.get_current_context().call_on_close(kervan.close)
    return kervan


def _resolved(kervan: Kervan):
    model, problems = kervan.check_metadata()
    if problems:
        for problem in problems:
            click.echo(str(problem), err=True)
        click.echo(f"{len(problems)} problem(s) in the metadata; nothing was changed.", err=True)
        sys.exit(1)
    kervan.set_model(model)
    return model


@click.group()
@click.version_option(package_name="kervan")
def main():
    """Kervan: a metadata-driven CRM engine."""


@main.command()
def validate():
    """Check every metadata layer: JSON Schema and semantics."""
    kervan = _kervan()
    model = _resolved(kervan)
    fields = sum(len(e.user_fields) for e in model.entities.values())
    click.echo(f"metadata is valid: {len(model.entities)} entities, {fields} fields, "
               f"{len(model.series)} number series from {len(model.layers)} layer(s)")


@main.command()
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--allow-destructive", is_flag=True,
              help="Allow changes that could lose data; old values are kept in kv_archive.")
def migrate(dry_run: bool, allow_destructive: bool):
    """Bring the database schema in line with the metadata (additive by default)."""
    from .storage.schema_sync import apply_plan, plan_sync

    kervan = _kervan()
    model = _resolved(kervan)
    plan = plan_sync(kervan.db, model, allow_destructive=allow_destructive)
    for line in plan.lines():
        click.echo(line)
    if plan.refused:
        click.echo(f"{len(plan.refused)} change(s) refused because they could lose data; "
                   f"nothing was changed.", err=True)
        sys.exit(1)
    if dry_run:
        click.echo(f"dry run: {len(plan.changes)} change(s) planned, nothing was changed.")
        return
    apply_plan(kervan.db, model, plan)
    click.echo(f"applied {len(plan.changes)} change(s).")


@main.command()
def demo():
    """Load the demo data of every metadata layer (running it twice changes nothing)."""
    from .demo import DemoError, demo_files, load_demo

    kervan = _kervan()
    _resolved(kervan)
    files = demo_files(kervan.metadata_directories())
    if not files:
        click.echo("no demo data in the metadata layers.")
        return
    try:
        result = load_demo(kervan, files)
    except DemoError as exc:
        click.echo(f"demo data not loaded: {exc}", err=True)
        sys.exit(1)
    parts = ", ".join(f"{n} {key}" for key, n in sorted(result.created.items()))
    click.echo(f"demo data: created {result.total} record(s){': ' + parts if parts else ''}; "
               f"{result.users} user(s); {result.skipped} already present.")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--debug", is_flag=True)
def serve(host: str, port: int, debug: bool):
    """Serve the web application."""
    from .app import create_app

    app = create_app()
    app.run(host=host, port=port, debug=debug, use_reloader=False)


def run():
    """Entry point that turns metadata errors into messages, never tracebacks."""
    try:
        main(standalone_mode=True)
    except MetadataError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)


if __name__ == "__main__":
    run()
