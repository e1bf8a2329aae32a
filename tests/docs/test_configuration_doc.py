"""docs/configuration.md documents every environment variable `Settings` reads, with its
default, and nothing `Settings` does not read (outside its "Read outside Settings"
section, whose variables must be read somewhere in the repository)."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from core.settings import Settings
from tests.docs.markdown import DOCS, REPO, code_cell, read, section, table_rows

PAGE = DOCS / "configuration.md"
OUTSIDE = "Read outside Settings"
# Where the variables read outside Settings may be read.
READERS = ["api", "core", "worker", "Procfile", "Dockerfile", "docker-compose.yml", ".env.example"]


def _rows(text: str) -> dict[str, str]:
    """variable -> its default cell."""
    found: dict[str, str] = {}
    for row in table_rows(text):
        name = code_cell(row[0])
        assert name is not None, f"configuration.md: no `VARIABLE` in row {row}"
        assert len(row) == 3, f"configuration.md: not 3 cells in row {row}"
        assert name not in found, f"configuration.md documents {name} twice"
        found[name] = row[1]
    return found


def documented() -> tuple[dict[str, str], dict[str, str]]:
    """(Settings rows, rows read outside Settings)."""
    text = read(PAGE)
    outside = section(text, OUTSIDE)
    return _rows(text.replace(outside, "")), _rows(outside)


def environment_name(name: str, field: FieldInfo) -> str:
    alias = field.validation_alias or field.alias
    assert alias is None or isinstance(alias, str), f"{name}: alias {alias!r} not supported"
    return (alias or name).upper()


def rendered_default(field: FieldInfo) -> str | None:
    """The default as the page writes it; None for unset."""
    value: Any = field.default
    if value is PydanticUndefined:
        assert field.default_factory is not None, "a required setting"
        value = field.default_factory()  # type: ignore[call-arg]
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return ",".join(_scalar(item) for item in value)
    return _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def default_matches(cell: str, expected: str | None) -> bool:
    if expected is None:
        return cell.startswith("—")
    if expected == "":
        return cell.startswith("empty")
    return cell.startswith(f"`{expected}`")


def test_every_setting_is_documented_with_its_default() -> None:
    rows, _ = documented()
    settings = {
        environment_name(name, field): field for name, field in Settings.model_fields.items()
    }
    missing = sorted(set(settings) - set(rows))
    unknown = sorted(set(rows) - set(settings))
    assert not missing, f"docs/configuration.md lacks settings of core/settings.py: {missing}"
    assert not unknown, f"docs/configuration.md documents what Settings lacks: {unknown}"
    wrong = [
        f"{name}: documented {rows[name]!r}, default {rendered_default(field)!r}"
        for name, field in settings.items()
        if not default_matches(rows[name], rendered_default(field))
    ]
    assert not wrong, "docs/configuration.md gives wrong defaults:\n" + "\n".join(wrong)


def test_variables_read_outside_settings_are_read_somewhere() -> None:
    _, outside = documented()
    assert outside, f"no {OUTSIDE!r} table"
    texts = []
    for reader in READERS:
        path = REPO / reader
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        texts += [read(file) for file in files if file.exists()]
    settings = {name.upper() for name in Settings.model_fields}
    for name in outside:
        assert name not in settings, f"{name} is a setting: move it to its section"
        assert any(name in text for text in texts), f"nothing in {READERS} reads {name}"
