"""Reading the deployment files the way their tools do, for tests that run what they run
without Docker: the Procfile as honcho parses it, docker-compose.yml with Compose's
variable interpolation, and the Dockerfile's runtime stage laid out in a folder from the
build context that .dockerignore leaves."""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]

# honcho's own rule (honcho.environ): anything else, comments included, is skipped.
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")
# `${PORT:-8000}` in a Procfile command: the platform's port, or the default.
PORT_DEFAULT = re.compile(r"\$\{PORT:-(\d+)\}")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BRACED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", re.DOTALL)
# What docker compose refuses to start without (in .env); the rest has defaults that
# work on a laptop. The values are examples.
COMPOSE_REQUIRED = {
    "SECRET_KEY": "s" * 48,
    "POSTGRES_PASSWORD": "pg-password",
    "MINIO_ROOT_PASSWORD": "minio-password",
    "FLOWER_BASIC_AUTH": "admin:flower-password",
}


def procfile(path: Path = REPO / "Procfile") -> dict[str, str]:
    processes: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if found := PROCFILE_LINE.match(line):
            processes[found.group(1)] = found.group(2)
    return processes


def procfile_argv(command: str, port: int | None = None) -> list[str]:
    """A Procfile command as the argv its shell runs, `${PORT:-n}` taken as `port` (or n)."""
    return shlex.split(PORT_DEFAULT.sub(lambda m: str(port or m.group(1)), command))


def heredoc_settings(markdown: str) -> list[set[str]]:
    """The variables each `cat >> .env <<EOF ... EOF` in a page's shell blocks appends."""
    found = []
    for body in re.findall(r"cat >> \.env <<EOF\n(.*?)\nEOF\n", markdown, re.DOTALL):
        found.append({line.split("=", 1)[0] for line in body.splitlines() if "=" in line})
    return found


# --- docker compose ---------------------------------------------------------------


class ComposeError(Exception):
    """What `docker compose` refuses to start with (`${VAR:?message}`)."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
    `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`, nested in the operand."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            out.append(_braced(text[i + 2 : end], env))
            i = end + 1
        elif found := NAME.match(text, i + 1):
            out.append(env.get(found.group(), ""))
            i = found.end()
        else:
            out.append("$")
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for index in range(start, len(text)):
        if text.startswith("${", index):
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise ComposeError(f"unclosed ${{ in {text!r}")


def _braced(expression: str, env: Mapping[str, str]) -> str:
    found = BRACED.fullmatch(expression)
    if found is None:
        raise ComposeError(f"invalid interpolation ${{{expression}}}")
    name, operator, operand = found.groups()
    value = env.get(name)
    if operator is None:
        return value or ""
    missing = value is None or (operator.startswith(":") and value == "")
    kind = operator[-1]
    if kind == "-":
        return interpolate(operand, env) if missing else str(value)
    if kind == "?":
        if missing:
            raise ComposeError(f"{name}: {interpolate(operand, env)}")
        return str(value)
    return "" if missing else interpolate(operand, env)


def _interpolated(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolated(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _interpolated(value, env) for key, value in node.items()}
    return node


def compose(env: Mapping[str, str], path: Path = REPO / "docker-compose.yml") -> dict[str, Any]:
    """docker-compose.yml as `docker compose config` sees it with this `.env`: YAML merge
    keys applied (PyYAML does them), every value interpolated."""
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return {
        key: value if key.startswith("x-") else _interpolated(value, env)
        for key, value in loaded.items()
    }


def service_env(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {str(key): "" if value is None else str(value) for key, value in environment.items()}


def service_command(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command")
    if isinstance(command, str):
        return shlex.split(command)
    assert isinstance(command, list), f"no command: {service}"
    return [str(part) for part in command]


# --- the Dockerfile ---------------------------------------------------------------


@dataclass
class Stage:
    """The Dockerfile's last stage: what the image is made of and runs."""

    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    copies: list[tuple[list[str], str]] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)


def dockerfile_runtime_stage(path: Path = REPO / "Dockerfile") -> Stage:
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") and not pending:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stage = Stage()
    for line in logical:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, rest = line.strip().partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stage = Stage()
        elif instruction == "WORKDIR":
            stage.workdir = posixpath.join(stage.workdir, rest.strip())
        elif instruction == "ENV":
            for assignment in shlex.split(rest):
                name, _, value = assignment.partition("=")
                stage.env[name] = value
        elif instruction == "COPY":
            args = shlex.split(rest)
            if any(arg.startswith("--from") for arg in args):
                continue  # from another stage, not from the build context
            assert not any(arg.startswith("--") for arg in args), f"unhandled: {line}"
            stage.copies.append(
                (args[:-1], posixpath.join(stage.workdir, args[-1]).rstrip("/") + "/")
            )
        elif instruction == "CMD":
            stage.cmd = json.loads(rest)
    return stage


def _glob(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match plus `**`) as a regular expression."""
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            regex += "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]"
            i = end + 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.compile(regex)


def dockerignore(path: Path = REPO / ".dockerignore") -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((negated, _glob(pattern)))
    return rules


def ignored(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: a path is left out when the last pattern that matches it, or one of
    its parent folders, is not a `!` exception."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    verdict = False
    for negated, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            verdict = not negated
    return verdict


def build_image_tree(root: Path, context: Path = REPO) -> Stage:
    """Lay out the runtime stage's files under `root` (the image's `/`), copied from the
    build context less what .dockerignore leaves out. Returns the stage."""
    stage = dockerfile_runtime_stage(context / "Dockerfile")
    rules = dockerignore(context / ".dockerignore")
    for sources, destination in stage.copies:
        target_dir = root / destination.lstrip("/")
        for source in sources:
            origin = context / source
            assert origin.exists(), f"COPY {source}: not in the build context"
            if origin.is_file():
                if not ignored(source, rules):
                    target_dir.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target_dir / origin.name)
                continue
            # COPY of a folder copies its contents; sources has exactly one folder here.
            assert len(sources) == 1, f"COPY {sources}: one folder at a time"
            for file in sorted(origin.rglob("*")):
                relative = file.relative_to(context).as_posix()
                if file.is_file() and not ignored(relative, rules):
                    target = target_dir / file.relative_to(origin)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, target)
    return stage


def image_path(root: Path, path_in_image: str) -> Path:
    return root / path_in_image.lstrip("/")


# An editable install of the project (this checkout's venv) finds `core.*` modules in
# the checkout even when `core` itself comes from PYTHONPATH; the image has no such
# install. Python runs this sitecustomize at start-up, after site-packages are set up.
ONLY_PYTHONPATH = """import sys
sys.meta_path[:] = [f for f in sys.meta_path
                    if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path_hooks[:] = [h for h in sys.path_hooks
                     if not getattr(h, "__module__", "").startswith("__editable__")]
sys.path_importer_cache.clear()
"""


def image_env(root: Path, stage: Stage, scratch: Path) -> dict[str, str]:
    """The environment the image gives its processes, with this venv's commands for
    /opt/venv's and the image's code on PYTHONPATH alone; nothing from this machine's
    environment that could configure Conveyor."""
    shim = scratch / "only-pythonpath"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "sitecustomize.py").write_text(ONLY_PYTHONPATH)
    env = {name: os.environ[name] for name in ("HOME", "LANG", "TMPDIR") if name in os.environ}
    env.update(stage.env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    pythonpath = [str(image_path(root, entry)) for entry in stage.env["PYTHONPATH"].split(":")]
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, str(shim)])
    return env
