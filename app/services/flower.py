"""`celestra flower`: Flower on the loopback and behind basic auth, unless the user opens it on purpose.

Left to itself, Flower 2.2 binds every interface (its `--address` defaults to '') while its banner says 127.0.0.1,
serves its pages (workers with their configuration and pids, the broker, tasks) to anyone when no auth is set, and
serves /metrics without credentials even when basic auth is set. Here the default bind is 127.0.0.1, starting needs
credentials (CELESTRA_FLOWER_BASIC_AUTH) or an explicit opt-out (--no-auth), and /metrics asks for the same
credentials as the pages. /healthcheck stays open: it answers "OK" and nothing else, and probes carry no credentials.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.errors import ConfigError
from app.settings import Settings

DEFAULT_ADDRESS = "127.0.0.1"
HOW_TO_AUTH = ("set CELESTRA_FLOWER_BASIC_AUTH=user:password (several: user1:pass1,user2:pass2), or run it "
               "unauthenticated on purpose with --no-auth (CELESTRA_FLOWER_NO_AUTH=true)")
# Flower's own auth options (`--basic-auth`, OAuth's `--auth`) and the FLOWER_* variables it reads for them.
FLOWER_AUTH_OPTIONS = ("basic-auth", "auth")
PROTECTED_PATHS = ("/metrics",)


@dataclass(frozen=True)
class FlowerLaunch:
    """How to start Flower. `argv` may hold the credentials: it is kept out of repr and must never be printed."""

    argv: list[str] = field(repr=False)
    bind: str  # what Flower listens on, as its own banner will say it
    auth: str  # how requests are authenticated, without any secret
    environ: dict[str, str] = field(default_factory=dict)  # set in this process before Flower starts

    def summary(self) -> str:
        return f"Flower listens on {self.bind}; {self.auth}"


def _flower_options(args: Sequence[str]) -> dict[str, str]:
    """The last value of each option in `args`, read the way tornado (Flower's parser) reads them: `--name=value`,
    `_` and `-` alike, parsing stops at the first argument that is not an option."""
    found: dict[str, str] = {}
    for arg in args:
        if arg == "--" or not arg.startswith("-"):
            break
        name, _, value = arg.lstrip("-").partition("=")
        found[name.replace("_", "-")] = value
    return found


def _flower_env_name(option: str) -> str:
    return "FLOWER_" + option.replace("-", "_").upper()


def _flower_env(environ: Mapping[str, str], option: str) -> str | None:
    return environ.get(_flower_env_name(option))


def _flower_option_label(option: str) -> str:
    return f"Flower's own {option} option (--{option} / {_flower_env_name(option)})"


def _credentials(settings: Settings) -> list[str]:
    """Celestra's basic-auth credentials, checked; an error never repeats the value, which holds passwords."""
    secret = settings.flower_basic_auth.get_secret_value().strip() if settings.flower_basic_auth else ""
    if not secret:
        return []
    # Flower splits the option on commas and compares each entry with the request's whole `user:password`.
    entries = [entry.strip() for entry in secret.split(",")]
    for number, entry in enumerate(entries, 1):
        user, sep, password = entry.partition(":")
        if not (user and sep and password):
            raise ConfigError(f"CELESTRA_FLOWER_BASIC_AUTH: entry {number} of {len(entries)} is not user:password "
                              "(non-empty user and password, entries separated by commas)")
    return entries


def _bind(options: Mapping[str, str], environ: Mapping[str, str]) -> tuple[str, bool]:
    """(what Flower will listen on, whether Celestra must pass its default --address)."""
    socket_path = options.get("unix-socket", _flower_env(environ, "unix-socket") or "")
    if socket_path:
        return f"the unix socket {socket_path}", False
    if "address" in options:
        address, default = options["address"], False
    elif _flower_env(environ, "address") is not None:
        address, default = _flower_env(environ, "address") or "", False
    else:
        address, default = DEFAULT_ADDRESS, True
    if not address:
        # Flower would bind every interface (IPv4 and IPv6) and print 127.0.0.1: name the interfaces instead.
        raise ConfigError("Flower's --address is empty, which binds every interface while Flower's log says "
                          "127.0.0.1: give the address to listen on (0.0.0.0 for every IPv4 interface)")
    return f"{address} ({_reach(address)})", default


def _reach(address: str) -> str:
    if address == "localhost":
        return "this host only"
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return "the interfaces that name resolves to"
    if ip.is_loopback:
        return "this host only; --address=0.0.0.0 to open it"
    if ip.is_unspecified:
        return f"every IPv{ip.version} interface"
    return "that interface"


def flower_launch(args: Sequence[str], settings: Settings, *, no_auth: bool = False,
                  environ: Mapping[str, str] | None = None) -> FlowerLaunch:
    """The `celery flower` argv for `celestra flower ARGS`; ConfigError, saying what to set, when it must not start."""
    environ = os.environ if environ is None else environ
    options = _flower_options(args)
    no_auth = no_auth or settings.flower_no_auth
    credentials = _credentials(settings)
    flower_own = [name for name in FLOWER_AUTH_OPTIONS if options.get(name) or _flower_env(environ, name)]
    if no_auth and (credentials or flower_own):
        given = "CELESTRA_FLOWER_BASIC_AUTH" if credentials else _flower_option_label(flower_own[0])
        raise ConfigError(f"celestra flower: --no-auth (or CELESTRA_FLOWER_NO_AUTH) and {given} are both set: "
                          "keep one")
    if not (no_auth or credentials or flower_own):
        raise ConfigError(f"celestra flower needs authentication: {HOW_TO_AUTH}")
    bind, default_address = _bind(options, environ)
    argv = ["flower"]
    if default_address:
        argv.append(f"--address={DEFAULT_ADDRESS}")
    if credentials:
        # Before the user's options: tornado keeps the last value, so an explicit --basic-auth still wins.
        argv.append("--basic-auth=" + ",".join(credentials))
    argv += list(args)
    environ_updates: dict[str, str] = {}
    if no_auth:
        # Flower's REST API refuses every call when no auth is set unless this is true: --no-auth opens it too.
        environ_updates["FLOWER_UNAUTHENTICATED_API"] = "true"
        auth = ("NO authentication (--no-auth): whoever reaches it sees the workers, their configuration and "
                "the broker, and can control them")
    elif credentials and "basic-auth" not in options:
        plural = "s" if len(credentials) > 1 else ""
        auth = f"basic auth, {len(credentials)} credential{plural} from CELESTRA_FLOWER_BASIC_AUTH"
    else:
        auth = _flower_option_label(flower_own[0])
    return FlowerLaunch(argv=argv, bind=bind, auth=auth, environ=environ_updates)


def _require_user(handler_class: Any) -> Any:
    """`handler_class`, answering 401 unless the request passes the authentication Flower's pages use."""

    def prepare(self: Any) -> Any:
        result = handler_class.prepare(self)
        # Flower's get_current_user raises 401 on missing or wrong basic-auth credentials, returns None for an
        # OAuth visitor not logged in, and True when no auth is configured (--no-auth): then this lets it through.
        if not self.current_user:
            import tornado.web

            raise tornado.web.HTTPError(401)
        return result

    return type(f"Authenticated{handler_class.__name__}", (handler_class,),
                {"prepare": prepare, "celestra_requires_user": True})


def protect_flower_handlers() -> None:
    """Make Flower's unauthenticated handlers of PROTECTED_PATHS require a user. Flower builds its application from
    this very list (flower.urls.handlers), so replacing entries in place before it starts is enough."""
    from flower import urls

    for index, handler in enumerate(urls.handlers):
        if (isinstance(handler, tuple) and handler[0] in PROTECTED_PATHS
                and not getattr(handler[1], "celestra_requires_user", False)):
            urls.handlers[index] = (handler[0], _require_user(handler[1]), *handler[2:])


def run_flower(launch: FlowerLaunch) -> None:
    """Start Flower in this process (the argv never reaches the process table) with Celestra's Celery app."""
    try:
        import flower  # noqa: F401
    except ImportError as exc:
        raise ConfigError("celestra flower needs Flower: pip install 'celestra[flower]'") from exc
    from app.celery_app import get_celery

    protect_flower_handlers()
    os.environ.update(launch.environ)
    get_celery().start(launch.argv)
