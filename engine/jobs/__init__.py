"""Background work with Huey: SQLite storage by default, Redis when KERVAN_REDIS_URL is set.

The queue is module-level because Huey's consumer imports tasks by name; everything a task
needs (database, model) it builds in its own process from the same settings, so several
workers on several machines share nothing but the queue and the database.
"""

from __future__ import annotations

from huey import RedisHuey, SqliteHuey, crontab

from engine.config import Settings


def make_huey(settings: Settings):
    if settings.redis_url:
        return RedisHuey("kervan", url=settings.redis_url)
    settings.instance.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("kervan", filename=str(settings.instance / "huey.db"))


huey = make_huey(Settings.from_env())


_RUNTIME = []


def use_runtime(kervan) -> None:
    """Run this process's jobs against the given runtime (embedding, tests)."""
    _RUNTIME[:] = [kervan]


def runtime():
    """This worker process's Kervan runtime."""
    if not _RUNTIME:
        from engine.runtime import Kervan

        _RUNTIME.append(Kervan())
    return _RUNTIME[0]


def fresh_runtime():
    """The runtime with any metadata change another process made picked up."""
    kervan = runtime()
    kervan.refresh()
    return kervan


@huey.periodic_task(crontab(hour="2", minute="30"))
def recompute_lifecycles_daily():
    """Customer lifecycle segments, every night."""
    from engine.workflow.lifecycle import recompute_lifecycles

    return recompute_lifecycles(fresh_runtime())


@huey.task()
def recompute_lifecycles_now():
    from engine.workflow.lifecycle import recompute_lifecycles

    return recompute_lifecycles(fresh_runtime())


@huey.task(retries=3, retry_delay=60)
def send_document_task(entity_key, record_id, to, template_id, user_id, language):
    """E-mail a document with its PDF; a failure is recorded on it and retried."""
    from engine.documents.send import send_document

    send_document(fresh_runtime(), entity_key, record_id, to, template_id, user_id, language)
