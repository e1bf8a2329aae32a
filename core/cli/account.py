"""`conveyor register|login|logout|whoami`. Secrets are asked for on the terminal or read from
stdin (`--password-stdin`, `--api-key-stdin`), never taken as arguments, so they stay
out of shell history and `ps`."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from core.cli import credentials
from core.cli.credentials import DEFAULT_URL, Login
from core.cli.display import SUCCEEDED, USAGE, Output
from core.client import APIError, Client


def _secret(from_stdin: bool, prompt: str) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return getpass.getpass(prompt)


def _login(out: Output, args: argparse.Namespace) -> int:
    url = (args.url or os.environ.get("CONVEYOR_URL") or DEFAULT_URL).rstrip("/")
    if getattr(args, "api_key_stdin", False):
        key = _secret(True, "")
        with Client(url, api_key=key) as client:
            client.agents.list()  # any call a key may make: is the key good here?
        credentials.save(Login(url, api_key=key))
        return _logged_in(out, url, None, f"with API key {key[:12]}…")
    if not args.email and (args.password_stdin or not sys.stdin.isatty()):
        out.note("error: --email is needed when the password comes from stdin")
        return USAGE
    email = args.email or input("Email: ").strip()
    password = _secret(args.password_stdin, "Password: ")
    if not email or not password:
        out.note("error: an email and a password are needed")
        return USAGE
    with Client(url) as client:
        if args.register:
            client.accounts.register(email, password)
            out.note(f"registered {email} at {url}")
        tokens = client.accounts.log_in(email, password)
    credentials.save(Login(url, email).with_tokens(tokens))
    return _logged_in(out, url, email, f"as {email}")


def _logged_in(out: Output, url: str, email: str | None, who: str) -> int:
    stored = str(credentials.login_path())
    if out.as_json:
        out.data({"url": url, "email": email, "stored": stored})
    else:
        out.note(f"logged in to {url} {who} ({stored})")
    return SUCCEEDED


def _logout(out: Output, _: argparse.Namespace) -> int:
    login = credentials.forget()
    if out.as_json:
        out.data({"logged_out": login.url if login else None})
    if login is None:
        out.note("not logged in")
        return SUCCEEDED
    if login.refresh_token:
        try:
            with Client(login.url) as client:
                client.accounts.log_out(login.refresh_token)
        except APIError as exc:
            # The stored login is gone either way; the session lapses on its own.
            out.note(f"the API did not end the session ({exc.code}); it expires by itself")
    if not out.as_json:
        out.note(f"logged out of {login.url}")
    return SUCCEEDED


def _whoami(client: Client, out: Output, _: argparse.Namespace) -> int:
    login = credentials.load()
    if os.environ.get("CONVEYOR_API_KEY") or (login is not None and login.api_key):
        workflows = client.agents.list()  # proves the key works
        if out.as_json:
            out.data({"api_key": True, "workflows": len(workflows)})
        else:
            out.line("an API key (its scopes are listed by an owner at /api/v1/api-keys)")
        return SUCCEEDED
    user = client.accounts.me()
    if out.as_json:
        out.data(user)
        return SUCCEEDED
    out.line(user.email)
    for tenant in user.tenants:
        out.line(f"  {tenant.id}  {tenant.role:<7} {tenant.name}")
    return SUCCEEDED


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    register = commands.add_parser(
        "register", help="create an account (and its personal tenant), then log in"
    )
    login = commands.add_parser(
        "login", help="log in to a Conveyor API and keep the login (mode 0600)"
    )
    for parser in (register, login):
        parser.add_argument("--url", help=f"the API (CONVEYOR_URL, else {DEFAULT_URL})")
        parser.add_argument("--email")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
    secret = login.add_mutually_exclusive_group()
    secret.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    secret.add_argument(
        "--api-key-stdin",
        action="store_true",
        help="keep an API key (read from stdin) instead of a user login",
    )
    register.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    register.set_defaults(local=_login, register=True)
    login.set_defaults(local=_login, register=False)
    logout = commands.add_parser("logout", help="end the stored login's session and forget it")
    logout.add_argument("--json", action="store_true", help="machine-readable output")
    logout.set_defaults(local=_logout)
    whoami = commands.add_parser("whoami", parents=[common], help="who the commands act as")
    whoami.set_defaults(run=_whoami)
