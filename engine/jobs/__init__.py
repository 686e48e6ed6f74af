"""Background work with Huey: SQLite storage by default, Redis when KERVAN_REDIS_URL is set.

The queue is module-level because Huey's consumer imports tasks by name; everything a task
needs (database, model) it builds in its own process from the same settings, so several
workers on several machines share nothing but the queue and the database.
"""

from __future__ import annotations

from functools import cache

from huey import RedisHuey, SqliteHuey, crontab

from engine.config import Settings


def make_huey(settings: Settings):
    if settings.redis_url:
        return RedisHuey("kervan", url=settings.redis_url)
    settings.instance.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("kervan", filename=str(settings.instance / "huey.db"))


huey = make_huey(Settings.from_env())


@cache
def runtime():
    """This worker process's Kervan runtime."""
    from engine.runtime import Kervan

    return Kervan()


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
