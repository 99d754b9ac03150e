"""What the user types for the docker backend and what it says back: the --hosts strings it
takes (an ssh:// URL or ~/.ssh/config alias, a Docker context name) checked for form, and its
own errors (an image that cannot be had, the engine refusing or dropping a request) in one line.
Standard library at import: the options are parsed before any engine is asked for anything.
"""

import re

from lab.backends import FAILED, REFUSED, FlagRefused

# A host name, an address or a ~/.ssh/config alias (aliases may hold '_'); ssh reads the rest.
SSH_HOST = re.compile(r"^ssh://(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?"
                      r"(?P<host>[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])"
                      r"(?::(?P<port>\d{1,5}))?/?$")
CONTEXT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
HOST_FORMS = "ssh://[user@]host[:port] (a host or ~/.ssh/config alias), a Docker context name"


def host_item(item, source, allowed):
    """An ssh:// URL (its trailing '/' dropped) or a Docker context name; None for another
    kind; FlagRefused for a malformed URL, never echoing what may be a password."""
    if item.startswith("ssh://"):
        if re.match(r"^ssh://[^@/]*:[^@/]*@", item):
            raise FlagRefused(f"--hosts{source}: a password in an ssh:// URL is not taken; log "
                              f"in with a key (ssh://user@host[:port])")
        match = SSH_HOST.match(item)
        if not match or (match["port"] and not 1 <= int(match["port"]) <= 65535):
            raise FlagRefused(f"--hosts{source} {item!r}: not an ssh://[user@]host[:port] URL; "
                              f"{allowed}")
        return item.rstrip("/")
    if "://" in item or not CONTEXT.match(item):
        return None
    return item


def refusal(error):
    """(REFUSED or FAILED, one line) for an image that cannot be had or a request the engine
    refused or dropped; None for anything else."""
    from lab.backends.image import ImageError
    if isinstance(error, ImageError):
        return REFUSED, f"error: {error}"
    import docker
    import requests
    if isinstance(error, (docker.errors.DockerException, requests.exceptions.RequestException)):
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        return FAILED, (f"error: the Docker engine refused or dropped a request "
                        f"({type(error).__name__}: {first}); check `docker info` and retry")
    return None
