"""`invoke build`: the trial image, and its offline base when missing."""

from lab.backends import BackendUnavailable
from lab.backends.docker import connect
from lab.image import ImageError, ensure_image


def run(base_image, rebuild=False, say=print):
    try:
        client = connect()
    except BackendUnavailable as why:
        raise ImageError(f"{why}; building an image needs a Docker engine (start dockerd)") from None
    info = ensure_image(client, base_image, rebuild=rebuild, say=say)
    state = "built" if info.built_seconds is not None else "up to date (reused)"
    say(f"image {info.tag} {state}: id {info.id[:19]}, Python {info.python}, base {info.base}")
    return info
