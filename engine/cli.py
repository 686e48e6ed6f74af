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


def _ready(kervan: Kervan):
    """The resolved model, once the database matches it; otherwise say what to run."""
    from .storage.schema_sync import plan_sync

    model = _resolved(kervan)
    pending = plan_sync(kervan.db, model).changes
    if pending:
        shown = "; ".join(step.describe() for step in pending[:3])
        more = f" and {len(pending) - 3} more" if len(pending) > 3 else ""
        click.echo(f"the database is not in line with the metadata ({shown}{more}); run "
                   f"`kervan migrate` first.", err=True)
        sys.exit(1)
    return model


@main.group()
def user():
    """Manage users."""


@user.command("create")
@click.argument("username")
@click.option("--role", "roles", multiple=True, required=True, help="A role key; repeatable.")
@click.option("--password", required=True)
@click.option("--email")
@click.option("--full-name")
@click.option("--language", default="en", show_default=True, type=click.Choice(["en", "tr", "fa"]))
@click.option("--team", "teams", multiple=True, help="A team key; created if new; repeatable.")
def user_create(username, roles, password, email, full_name, language, teams):
    """Create a user who can sign in."""
    from .records.errors import RecordError

    kervan = _kervan()
    _ready(kervan)
    try:
        created = kervan.users.create(username, password, list(roles), email=email,
                                      full_name=full_name, language=language, teams=list(teams))
    except RecordError as exc:
        for name, message in exc.fields.items():
            click.echo(f"{name}: {message}", err=True)
        click.echo(f"user not created: {exc.message}", err=True)
        sys.exit(1)
    click.echo(f"created user {created.username} (#{created.id}) with role(s) "
               f"{', '.join(created.roles)}")


@user.command("list")
def user_list():
    """List users with their roles and teams."""
    kervan = _kervan()
    _ready(kervan)
    for u in kervan.users.all():
        state = "active" if u.active else "inactive"
        click.echo(f"{u.username}\t{u.full_name or ''}\t{','.join(u.roles)}\t"
                   f"{','.join(u.teams)}\t{state}")


@main.group()
def token():
    """Manage API tokens."""


@token.command("create")
@click.argument("username")
@click.option("--label", help="What the token is for.")
def token_create(username, label):
    """Create an API token; it is printed once, on the last line."""
    kervan = _kervan()
    _ready(kervan)
    found = kervan.users.by_username(username)
    if found is None or not found.active:
        click.echo(f"no active user {username!r}", err=True)
        sys.exit(1)
    value = kervan.users.create_token(found, label)
    click.echo(f"API token for {found.username} (send as 'Authorization: Bearer <token>'; "
               f"it is not shown again):")
    click.echo(value)


@token.command("revoke")
@click.argument("token_or_prefix")
def token_revoke(token_or_prefix):
    """Revoke a token (the whole token or its first 10 characters)."""
    kervan = _kervan()
    _ready(kervan)
    count = kervan.users.revoke_token(token_or_prefix)
    if not count:
        click.echo("no such active token", err=True)
        sys.exit(1)
    click.echo(f"revoked {count} token(s)")


@main.group()
def pack():
    """Sector packs: list, preview, install, uninstall."""


@pack.command("list")
def pack_list():
    """The packs in the packs folder and whether they are installed."""
    kervan = _kervan()
    _resolved(kervan)
    for info in kervan.packs.available():
        state = "installed" if info.installed else "available"
        click.echo(f"{info.key}\t{info.version}\t{state}\t{info.label.get('en', info.key)}")


def _pack_action(name: str, dry_run: bool, demo_data: bool, uninstall: bool):
    from .demo import DemoError, load_demo
    from .records.errors import RecordError

    kervan = _kervan()
    _ready(kervan)
    packs = kervan.packs
    try:
        if dry_run:
            plan, _model = (packs.plan_uninstall(name) if uninstall else
                            packs.plan_install(name))
            for line in plan.lines():
                click.echo(line)
            click.echo("dry run: nothing was changed.")
            return
        plan = packs.uninstall(name) if uninstall else packs.install(name)
    except RecordError as exc:
        click.echo(f"pack {name}: {exc.message}", err=True)
        sys.exit(1)
    for line in plan.lines():
        click.echo(line)
    click.echo(f"{'uninstalled' if uninstall else 'installed'} pack {name}.")
    if demo_data and not uninstall:
        demo_dir = kervan.settings.packs / name / "demo"
        files = sorted(demo_dir.glob("*.y*ml")) if demo_dir.is_dir() else []
        try:
            result = load_demo(kervan, files)
        except DemoError as exc:
            click.echo(f"demo data not loaded: {exc}", err=True)
            sys.exit(1)
        click.echo(f"demo data: created {result.total} record(s).")


@pack.command("install")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Print exactly what would change.")
@click.option("--demo", "demo_data", is_flag=True, help="Also load the pack's demo data.")
def pack_install(name: str, dry_run: bool, demo_data: bool):
    """Install a pack (its tables, fields and stages; records in removed stages are mapped)."""
    _pack_action(name, dry_run, demo_data, uninstall=False)


@pack.command("uninstall")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Print exactly what would change.")
def pack_uninstall(name: str, dry_run: bool):
    """Uninstall a pack: its fields and entities are hidden, their data kept."""
    _pack_action(name, dry_run, False, uninstall=True)


@main.command()
def demo():
    """Load the demo data of every metadata layer (running it twice changes nothing)."""
    from .demo import DemoError, demo_files, load_demo

    kervan = _kervan()
    _ready(kervan)
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
@click.option("--workers", default=2, show_default=True, help="Worker threads.")
def worker(workers: int):
    """Run the background job consumer (e-mail, reminders, scheduled rules)."""
    from huey.consumer import Consumer

    from .jobs import huey

    _ready(_kervan())
    click.echo(f"kervan worker: {type(huey).__name__} queue, {workers} worker(s)")
    Consumer(huey, workers=workers, worker_type="thread", periodic=True).run()


@main.command()
def lifecycle():
    """Recompute customer lifecycle segments now (the worker also does it every night)."""
    from .workflow.lifecycle import recompute_lifecycles

    kervan = _kervan()
    _ready(kervan)
    for key, count in recompute_lifecycles(kervan).items():
        click.echo(f"{key}: {count} record(s) changed segment")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--debug", is_flag=True)
def serve(host: str, port: int, debug: bool):
    """Serve the web application."""
    from .app import create_app

    _ready(_kervan())
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
