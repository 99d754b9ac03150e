"""`invoke info`: what the lab sees before it runs anything."""

import os

from lab import hostinfo, image, sysinfo, topology
from lab.backends import BackendUnavailable, engine_requested_explicitly


def show(config, say=print):
    cpus = topology.read_cpus()
    host = hostinfo.host(cpus)
    topo = host["topology"]
    say(f"host        {host['hostname']}: {host['cpu_model']}, kernel {host['kernel']}")
    say(f"CPUs        {host['cpu_count']} online, {len(cpus)} usable by this process "
        f"({sysinfo.format_cpu_list([c.id for c in cpus])}); {topo['physical_cores']} physical "
        f"cores in {topo['packages']} package(s), SMT {'on' if topo['smt'] else 'off'}")
    say(f"placement   spread order {topology.ordered(cpus, 'spread')}, "
        f"compact order {topology.ordered(cpus, 'compact')}")
    say(f"cgroup      v{host['cgroup_version']}; this process sees {sysinfo.seen()['cgroup']}")
    base = config["base_image"]
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
