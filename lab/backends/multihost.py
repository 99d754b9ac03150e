"""Several hosts in one run (--hosts): one Docker backend per host behind the Backend interface.

Each host is a lane: the runner runs the lanes side by side, one trial at a time per lane, so a
host's trials never overlap each other. Points carry their host (plan.Point.host); records name
it; meta.json keeps a facts block per host ("hosts"). CPUs, topology and facts of every host come
from that host (lab.backends.docker: a probe container there for a remote engine). Calibration
and anything else run outside the lanes go to the first host listed (`primary`).
"""

from lab.backends import RUN_LABEL, Backend


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
        return {"hosts": hosts}

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

    # --- trials -------------------------------------------------------------------------------

    def run(self, spec, cpuset, quota, time_limit_s, labels=None, image=None):
        return self.primary.run(spec, cpuset, quota, time_limit_s, labels, image)

    def stop_all(self, run_id):
        """Every host's containers of this run, by label; a host that does not answer is
        skipped (its engine took them down with it)."""
        stopped = 0
        for member in self.members.values():
            try:
                stopped += member.stop_all(run_id)
            except Exception:  # noqa: BLE001 (a lost host must not keep the others' running)
                continue
        return stopped

    def stopped_phrase(self, run_id, count):
        return (f"no container of this run is left on any host (label {RUN_LABEL}={run_id}"
                f"{f', {count} removed' if count else ''})")

    def engine_gone(self):
        return any(member.engine_gone() for member in self.members.values())

    def close(self):
        for member in self.members.values():
            try:
                member.close()
            except Exception:  # noqa: BLE001
                pass
