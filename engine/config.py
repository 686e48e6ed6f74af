"""Settings, read from `KERVAN_*` environment variables."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_ROOT.parent


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(f"KERVAN_{name}")
    return value if value not in (None, "") else default


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs written without a driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@dataclass
class Settings:
    """Everything configurable about one Kervan instance.

    Every field can be set with an environment variable `KERVAN_<NAME>`; see docs/settings.md.
    """

    instance: Path = field(default_factory=lambda: Path("instance").resolve())
    database_url: str = ""
    base_metadata: Path = field(default_factory=lambda: PROJECT_ROOT / "metadata")
    metadata: list[Path] = field(default_factory=list)
    packs: Path = field(default_factory=lambda: PROJECT_ROOT / "sector_packs")
    secret_key: str = ""
    timezone: str = "Europe/Istanbul"
    plugins: list[str] = field(default_factory=list)
    redis_url: str | None = None
    smtp_url: str | None = None
    mail_from: str = "kervan@localhost"
    max_upload_mb: int = 20
    currencies: tuple[str, ...] = ("TRY", "EUR", "USD", "IRR")

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Defaults, then `KERVAN_*` variables, then explicit overrides."""
        instance = Path(_env("INSTANCE", "instance")).resolve()
        settings = cls(
            instance=instance,
            database_url=_env("DATABASE_URL", ""),
            base_metadata=Path(_env("BASE_METADATA", str(PROJECT_ROOT / "metadata"))),
            metadata=[Path(p) for p in (_env("METADATA", "") or "").split(":") if p],
            packs=Path(_env("PACKS", str(PROJECT_ROOT / "sector_packs"))),
            secret_key=_env("SECRET_KEY", ""),
            timezone=_env("TIMEZONE", "Europe/Istanbul"),
            plugins=[p.strip() for p in (_env("PLUGINS", "") or "").split(",") if p.strip()],
            redis_url=_env("REDIS_URL"),
            smtp_url=_env("SMTP_URL"),
            mail_from=_env("MAIL_FROM", "kervan@localhost"),
            max_upload_mb=int(_env("MAX_UPLOAD_MB", "20")),
        )
        for key, value in overrides.items():
            setattr(settings, key, value)
        settings.finish()
        return settings

    def finish(self) -> None:
        """Fill derived defaults: the SQLite file and a persisted secret key."""
        self.instance = Path(self.instance).resolve()
        if not self.database_url:
            self.instance.mkdir(parents=True, exist_ok=True)
            self.database_url = f"sqlite:///{self.instance / 'kervan.db'}"
        self.database_url = normalise_database_url(self.database_url)
        if not self.secret_key:
            self.secret_key = self._instance_secret()

    def _instance_secret(self) -> str:
        # Several processes on one machine must share the key, so it lives in the instance folder.
        self.instance.mkdir(parents=True, exist_ok=True)
        path = self.instance / "secret_key"
        if not path.exists():
            path.write_text(secrets.token_hex(32), encoding="utf-8")
            path.chmod(0o600)
        return path.read_text(encoding="utf-8").strip()

    @property
    def metadata_directories(self) -> list[Path]:
        return [self.base_metadata, *self.metadata]
