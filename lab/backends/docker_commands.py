"""The docker backend's own commands: `invoke build` (the trial image, and its offline base when
missing) and the engine's lines of `invoke info` (which engine answers, what `--backend auto`
picks here and why). lab.commands hands them their flags.
"""

import os

from lab.backends import BackendUnavailable, engine_requested_explicitly


def build(base_image, rebuild=False, say=print):
    """The trial image of `base_image`, built or reused; ImageError in one line without an
    engine."""
    from lab.backends.docker import connect
    from lab.backends.image import ImageError, ensure_image
    try:
        client = connect()
    except BackendUnavailable as why:
        raise ImageError(f"{why}; building an image needs a Docker engine (start dockerd)") from None
    image = ensure_image(client, base_image, rebuild=rebuild, say=say)
    state = "built" if image.built_seconds is not None else "up to date (reused)"
    say(f"image {image.tag} {state}: id {image.id[:19]}, Python {image.python}, base {image.base}")
    return image


def engine_lines(base, say=print):
    """The engine, the base and trial images of `base`, and what --backend auto picks."""
    from lab.backends import image
    try:
        from lab.backends.docker import connect
        client = connect()
    except BackendUnavailable as why:
        say(f"engine      none: {why}")
        choice = ("refused (DOCKER_HOST is set but does not answer)"
                  if engine_requested_explicitly() else
                  "local (host processes pinned with sched_setaffinity)")
        say(f"backend     auto -> {choice}")
        return
    version = client.version()
    engine = client.info()
    say(f"engine      Docker {version.get('Version')} (API {version.get('ApiVersion')}) at "
        f"{os.environ.get('DOCKER_HOST') or 'the default socket'}, cgroup "
        f"v{engine.get('CgroupVersion')} ({engine.get('CgroupDriver')}), {engine.get('NCPU')} CPUs")
    tag = image.image_tag(base)
    say(f"base image  {base}: {'present' if image._exists(client, base) else 'missing'}"
        f"{' (built offline by invoke build)' if image.offline_suite(base) else ''}")
    say(f"image       {tag}: {'present' if image._exists(client, tag) else 'missing (invoke build)'}")
    say("backend     auto -> docker (the engine answers)")
