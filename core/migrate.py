"""`alembic upgrade head` from code, for `conveyor migrate` and the embedded default."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config


def _alembic_ini() -> Path:
    # Beside the code in a checkout or editable install; the working directory when
    # the package is installed into site-packages (the image runs from /app).
    for folder in (Path(__file__).resolve().parent.parent, Path.cwd()):
        if (folder / "alembic.ini").is_file():
            return folder / "alembic.ini"
    raise FileNotFoundError("alembic.ini not found beside the code or in the working directory")


def alembic_config(database_url: str) -> Config:
    config = Config(str(_alembic_ini()))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
