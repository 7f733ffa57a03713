"""How `celestra flower` turns its options and settings into Flower's: bind, credentials, refusals (no process;
tests/integration/test_flower.py runs the real Flower)."""

from __future__ import annotations

import pytest

from app.errors import ConfigError
from app.services.flower import flower_launch, protect_flower_handlers
from app.settings import Settings

PASSWORD = "s3cr3t-Pa55"


def settings(basic_auth: str | None = None, no_auth: bool = False) -> Settings:
    return Settings(flower_basic_auth=basic_auth, flower_no_auth=no_auth)


def test_default_binds_the_loopback_with_the_credentials_before_the_users_options() -> None:
    launch = flower_launch(["--port=5555"], settings(f"admin:{PASSWORD},ops:other"), environ={})
    assert launch.argv == ["flower", "--address=127.0.0.1", f"--basic-auth=admin:{PASSWORD},ops:other",
                           "--port=5555"]
    assert launch.bind.startswith("127.0.0.1 (this host only")
    assert launch.environ == {}
    assert "2 credentials from CELESTRA_FLOWER_BASIC_AUTH" in launch.summary()


def test_entries_are_trimmed_and_a_colon_may_be_part_of_the_password() -> None:
    launch = flower_launch([], settings(" admin:a:b , ops:c "), environ={})
    assert "--basic-auth=admin:a:b,ops:c" in launch.argv


@pytest.mark.parametrize(("args", "environ", "bind"), [
    (["--address=0.0.0.0"], {}, "0.0.0.0 (every IPv4 interface)"),
    (["--address_x=1", "--address=10.1.2.3"], {}, "10.1.2.3 (that interface)"),
    (["-address=::"], {}, ":: (every IPv6 interface)"),
    (["--address=localhost"], {}, "localhost (this host only)"),
    ([], {"FLOWER_ADDRESS": "0.0.0.0"}, "0.0.0.0 (every IPv4 interface)"),
    (["--unix-socket=/run/flower.sock"], {}, "the unix socket /run/flower.sock"),
    ([], {"FLOWER_UNIX_SOCKET": "/run/f.sock"}, "the unix socket /run/f.sock"),
])
def test_an_explicit_address_replaces_the_default(args: list[str], environ: dict[str, str], bind: str) -> None:
    launch = flower_launch(args, settings("admin:pw"), environ=environ)
    assert not any(arg == "--address=127.0.0.1" for arg in launch.argv)
    assert launch.argv[len(launch.argv) - len(args):] == args  # the user's options last: they win
    assert launch.bind == bind


def test_options_after_a_positional_argument_are_not_flowers() -> None:
    # tornado stops at the first non-option: this --address never reaches Flower, so the default stays.
    launch = flower_launch(["extra", "--address=0.0.0.0"], settings("admin:pw"), environ={})
    assert "--address=127.0.0.1" in launch.argv


@pytest.mark.parametrize("args", [["--address="], ["--address=", "--port=1"]])
def test_an_empty_address_is_refused_because_flower_would_log_127_0_0_1(args: list[str]) -> None:
    with pytest.raises(ConfigError, match="binds every interface"):
        flower_launch(args, settings("admin:pw"), environ={})
    with pytest.raises(ConfigError, match="binds every interface"):
        flower_launch([], settings("admin:pw"), environ={"FLOWER_ADDRESS": ""})


@pytest.mark.parametrize("value", [None, "", "   "])
def test_no_credentials_and_no_opt_out_refuses_saying_what_to_set(value: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        flower_launch([], settings(value), environ={"FLOWER_UNAUTHENTICATED_API": "true"})
    message = str(caught.value)
    assert "CELESTRA_FLOWER_BASIC_AUTH=user:password" in message
    assert "--no-auth" in message and "CELESTRA_FLOWER_NO_AUTH=true" in message


@pytest.mark.parametrize("value", ["admin", f"admin:{PASSWORD},", f":{PASSWORD}", "admin:", f"a:{PASSWORD},,b:c"])
def test_malformed_credentials_are_refused_without_repeating_them(value: str) -> None:
    with pytest.raises(ConfigError, match="is not user:password") as caught:
        flower_launch([], settings(value), environ={})
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize("opt_out", ["flag", "setting"])
def test_no_auth_opens_pages_and_api_but_keeps_the_loopback(opt_out: str) -> None:
    launch = flower_launch([], settings(no_auth=opt_out == "setting"), no_auth=opt_out == "flag", environ={})
    assert launch.argv == ["flower", "--address=127.0.0.1"]
    assert launch.environ == {"FLOWER_UNAUTHENTICATED_API": "true"}
    assert "NO authentication" in launch.summary()


@pytest.mark.parametrize(("args", "environ", "value"), [
    ([], {}, "admin:pw"),
    (["--basic-auth=a:b"], {}, None),
    ([], {"FLOWER_BASIC_AUTH": "a:b"}, None),
])
def test_no_auth_with_credentials_is_a_contradiction(args: list[str], environ: dict[str, str],
                                                      value: str | None) -> None:
    with pytest.raises(ConfigError, match="keep one"):
        flower_launch(args, settings(value), no_auth=True, environ=environ)


@pytest.mark.parametrize(("args", "environ", "named"), [
    ([f"--basic-auth=admin:{PASSWORD}"], {}, "--basic-auth"),
    ([], {"FLOWER_BASIC_AUTH": f"admin:{PASSWORD}"}, "FLOWER_BASIC_AUTH"),
    (["--auth=.*@example.com"], {}, "--auth"),
])
def test_flowers_own_auth_options_count_as_auth(args: list[str], environ: dict[str, str], named: str) -> None:
    launch = flower_launch(args, settings(), environ=environ)
    assert launch.argv == ["flower", "--address=127.0.0.1", *args]
    assert named in launch.auth and launch.environ == {}


def test_the_password_is_in_no_text_meant_for_people() -> None:
    launch = flower_launch([], settings(f"admin:{PASSWORD}"), environ={})
    assert PASSWORD not in launch.summary() + repr(launch)
    assert PASSWORD not in repr(settings(f"admin:{PASSWORD}"))


def test_metrics_handler_requires_a_user_and_healthcheck_stays_open() -> None:
    pytest.importorskip("flower")
    from flower import urls
    from flower.views import monitor

    protect_flower_handlers()
    protect_flower_handlers()  # idempotent: never wrapped twice
    handlers = {h[0]: h[1] for h in urls.handlers if isinstance(h, tuple)}
    assert issubclass(handlers["/metrics"], monitor.Metrics)
    assert handlers["/metrics"] is not monitor.Metrics and handlers["/metrics"].__mro__[1] is monitor.Metrics
    assert handlers["/healthcheck"] is monitor.Healthcheck
