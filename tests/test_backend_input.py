"""What the user types for a backend is the backend's own (issue 19): a made-up backend, added
only to lab.backends.CLASSES, gets its flag parsed, its host strings taken and refused, and its
errors said in one line by the generic options and lab.commands.refusal, which name no backend.
The real backends' words go the same way (their messages are held by test_bad_input and
test_hosts through invoke)."""

import sys
import types

import pytest

from lab import backends
from lab.backends import REFUSED, Backend, BackendFlag, FlagRefused


class ZoneTrouble(RuntimeError):
    """An error only the made-up backend knows."""


def zone(value):
    text = "" if value is None else str(value)
    if text and not text.startswith("z-"):
        raise FlagRefused(f"--zone {value!r}: not a zone; allowed: z-<name>")
    return text or "z-default"


class ZoneBackend(Backend):
    name = "zone"
    flags = (BackendFlag("zone", zone),)
    host_forms = "zone://NAME (a zone)"

    @staticmethod
    def host_item(item, source, allowed):
        if not item.startswith("zone://"):
            return None
        if item == "zone://":
            raise FlagRefused(f"--hosts{source} {item!r}: a zone needs a name; {allowed}")
        return item

    @staticmethod
    def refusal(error):
        if isinstance(error, ZoneTrouble):
            return REFUSED, f"error: the zone said no ({error})"
        return None


@pytest.fixture
def zone_backend(monkeypatch):
    module = types.ModuleType("zone_backend_for_test")
    module.ZoneBackend = ZoneBackend
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(backends.CLASSES, "zone", (module.__name__, "ZoneBackend"))
    return ZoneBackend


def test_a_new_backend_s_flag_hosts_and_errors_reach_the_user_through_generic_code(zone_backend):
    from lab.commands import refusal
    from lab.run.options import BadInput, hosts
    assert "zone" in backends.flag_names()
    assert backends.parse_flags({"zone": "z-a"})["zone"] == "z-a"
    assert backends.parse_flags({})["zone"] == "z-default"
    with pytest.raises(FlagRefused, match="--zone 'x': not a zone"):
        backends.parse_flags({"zone": "x"})
    assert hosts("local,zone://a") == ["local", "zone://a"]
    with pytest.raises(BadInput) as why:
        hosts("zone://")
    assert "a zone needs a name" in str(why.value) and "zone://NAME (a zone)" in str(why.value)
    with pytest.raises(BadInput, match="unknown kind of host; allowed: local, .*zone://NAME"):
        hosts("ftp://x")
    assert refusal(ZoneTrouble("closed")) == (2, "error: the zone said no (closed)")
    assert refusal(KeyError("a bug")) is None  # no backend claims it: a traceback, as before


def test_without_it_its_words_are_unknown():
    from lab.run.options import BadInput, hosts
    assert "zone" not in backends.flag_names()
    with pytest.raises(BadInput, match="unknown kind of host"):
        hosts("zone://a")


def test_the_real_backends_say_their_own_errors():
    import docker
    from lab.backends.image import ImageError
    from lab.commands import refusal
    assert refusal(ImageError("no base")) == (2, "error: no base")
    status, line = refusal(docker.errors.APIError("500 Server Error"))
    assert status == 1 and line.startswith("error: the Docker engine refused or dropped")
    failed = backends.BackendUnavailable("gone", hint="")
    failed.run_exists = True
    assert refusal(failed) == (1, "error: gone")
