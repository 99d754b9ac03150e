"""Several hosts in one run (--hosts): one Docker backend per host behind the Backend interface.

Each host is a lane: the runner runs the lanes side by side, one trial at a time per lane, so a
host's trials never overlap each other. Hosts on one machine (one kernel: the same boot id, e.g.
two engines there) share one lane (`lane_group`): their trials never overlap either, and meta.json
says they share a machine. Two entries that reach one engine are refused (lab.backends). Points carry their host (plan.Point.host); records name
it; meta.json keeps a facts block per host ("hosts"). CPUs, topology and facts of every host come
from that host (lab.backends.docker: a probe container there for a remote engine). Calibration
and anything else run outside the lanes go to the first host listed (`primary`).
"""

import threading

from lab.backends import RUN_LABEL, Backend

STOP_WAIT_S = 30  # Ctrl-C: how long the hosts' stops (side by side) are waited for


class MultiHostBackend(Backend):
    """`members`: {host name: Backend} in the order of --hosts."""

    def __init__(self, members, config):
        super().__init__(config)
        self.members = dict(members)
        self.primary = next(iter(self.members.values()))
        self.name = self.primary.name
        self.engine_words = "a host's engine"
        self.trial_overhead_s = max(m.trial_overhead_s for m in self.members.values())
        self.supports_quota = all(m.supports_quota for m in self.members.values())

    @property
    def uninterruptible(self):
        return self.primary.uninterruptible

    @uninterruptible.setter
    def uninterruptible(self, value):  # the runner lends its guard to whoever runs trials
        for member in getattr(self, "members", {}).values():
            member.uninterruptible = value

    # --- lanes: one per host ------------------------------------------------------------------

    def lane_of(self, point):
        return point.host

    def on_lane(self, lane):
        return self.members[lane]

    def host_of(self, lane, default):
        return lane

    def lane_group(self, lane):
        """The first host of the machine `lane`'s host runs on: one lane per machine."""
        return next(group[0] for group in self.machines() if lane in group)

    def machines(self):
        """The hosts grouped by machine (their kernels' boot id), in --hosts order; a host whose
        boot id cannot be told is a machine of its own. Asked once the images are there (a
        remote host's boot id comes from its probe container)."""
        if getattr(self, "_machines", None) is None:
            by_boot = {}
            for name, member in self.members.items():
                boot_id = getattr(member, "boot_id", lambda: None)()
                by_boot.setdefault(boot_id or f"unknown:{name}", []).append(name)
            self._machines = list(by_boot.values())
        return self._machines

    def shared_machines(self):
        return [group for group in self.machines() if len(group) > 1]

    def host_cpus(self):
        return {name: member.cpus() for name, member in self.members.items()}

    def host_words(self, lane):
        return f"host {lane}"

    # --- the host(s) --------------------------------------------------------------------------

    def cpus(self):
        return self.primary.cpus()

    def host_facts(self):
        return self.primary.host_facts()

    def run_meta(self):
        """meta.json's "hosts": per host its facts, its engine and its images."""
        hosts = {}
        for name, member in self.members.items():
            facts = member.host_facts()
            images = list(getattr(member, "images", None) or [])
            hosts[name] = {**facts, "backend": member.describe(),
                           "images": {image: member.image_info(image) for image in images}}
        meta, warnings = {"hosts": hosts}, []
        for group in self.shared_machines():
            for name in group:
                hosts[name]["shares_machine_with"] = [other for other in group if other != name]
            warnings.append(shared_machine_warning(group, hosts[group[0]].get("boot_id")))
        if warnings:
            meta["warnings"] = warnings
        return meta

    def describe(self):
        return {**self.primary.describe(), "hosts": list(self.members)}

    # --- images -------------------------------------------------------------------------------

    def plan_images(self, bases, image=None):
        return self.primary.plan_images(bases, image)

    def prepare_images(self, bases, image=None, say=print):
        names = None
        for member in self.members.values():
            names = member.prepare_images(bases, image, say)
        return names

    def share_project(self, path, say=print):
        """--command/--target: each host shows the user's folder its own way (lab.backends.docker:
        a bind mount here, an image made here and shipped to a remote host)."""
        for member in self.members.values():
            member.share_project(path, say)

    def add_requirements(self, requirements, say=print):
        for member in self.members.values():
            member.add_requirements(requirements, say)

    def use_recorded(self, meta, names, run):
        recorded = meta.get("hosts") or {}
        for host, member in self.members.items():
            member.use_recorded_images((recorded.get(host) or {}).get("images") or {}, names,
                                       f"{run} (host {host})")

    def use_recorded_images(self, recorded, names, run):
        for member in self.members.values():
            member.use_recorded_images(recorded, names, run)

    def image_for_rerun(self, recorded, base_image):
        return self.primary.image_for_rerun(recorded, base_image)

    def image_info(self, name=None):
        return self.primary.image_info(name)

    def known_python(self, name):
        return self.primary.known_python(name)

    # --- trials -------------------------------------------------------------------------------

    def run(self, spec, cpuset, quota, time_limit_s, labels=None, image=None):
        return self.primary.run(spec, cpuset, quota, time_limit_s, labels, image)

    def stop_all(self, run_id, wait_s=STOP_WAIT_S):
        """Every host's containers of this run, by label, all hosts at once: a host that does
        not answer (gone, or a frozen connection) holds up none of the others and is skipped
        after `wait_s` (its engine took them down with it, or --resume removes them)."""
        counts = {}

        def stop(name, member):
            try:
                counts[name] = member.stop_all(run_id)
            except Exception:  # noqa: BLE001 (a lost host must not keep the others' running)
                counts[name] = 0

        threads = [threading.Thread(target=stop, args=item, daemon=True,
                                    name=f"stop {item[0]}") for item in self.members.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(wait_s)  # all started together: wait_s in all, about
        self.unanswered = [name for name in self.members if name not in counts]
        return sum(counts.values())

    def stopped_phrase(self, run_id, count):
        silent = getattr(self, "unanswered", [])
        unanswered = (f"; host(s) {', '.join(silent)} did not answer: `--resume` removes what "
                      f"is left there" if silent else "")
        where = "on any other host" if silent else "on any host"
        return (f"no container of this run is left {where} (label {RUN_LABEL}={run_id}"
                f"{f', {count} removed' if count else ''}){unanswered}")

    def engine_gone(self):
        return any(member.engine_gone() for member in self.members.values())

    def close(self):
        for member in self.members.values():
            try:
                member.close()
            except Exception:  # noqa: BLE001
                pass


def shared_machine_warning(group, boot_id):
    """meta.json's warning (code, message, advice) for hosts that are one machine."""
    return {"code": "shared-machine",
            "message": f"hosts {' and '.join(group)} are one machine (one kernel, boot id "
                       f"{str(boot_id or '?')[:8]}...): their trials ran one at a time in one "
                       f"lane, never side by side, but on the same CPUs, so their figures are "
                       f"not independent measurements of separate machines",
            "advice": "compare them as engines of one machine; for machines compared with "
                      "each other give --hosts entries that are separate machines"}
