"""A small family written as a newcomer would, to prove the interface carries one: `probe`.

Its trial side is lab/experiments/probe.py (already in the trial image); this is its whole host
side. Nothing in lab.run, lab.present.report or lab.present.compare knows it exists.
"""

from dataclasses import dataclass

from lab.families import Family, FamilyOptions
from lab.hosts import topology
from lab.run import options as parse
from lab.run.plan import make_point


@dataclass
class ProbeOptions(FamilyOptions):
    naps: list  # seconds each trial sleeps



class ProbeFamily(Family):
    name = "probe"
    experiment = "probe"
    title = "Naps"
    anchor = "naps"
    flags = {"naps": "seconds each trial sleeps, e.g. 0.05,0.1"}
    plan_flags = ("naps",)
    lengthen_flag = "--naps"

    def parse(self, flags, defaults, shared):
        values = parse.chosen(flags, defaults, ("naps",))
        naps = []
        for item in parse.list_items("--naps", values["naps"]):
            try:
                naps.append(float(item))
            except ValueError:
                raise parse.BadInput(f"--naps {item!r}: not a number; allowed: seconds") from None
        return ProbeOptions(shared, naps)

    def points(self, options, cpus, images, prepared):
        shared = options.shared
        points = [make_point(experiment=self.experiment, variant="sleep", limit="cpuset",
                             cpus=count, cpuset=topology.cpuset_for(count, cpus, shared.placement),
                             quota=None, placement=shared.placement, workers=1,
                             start_method=shared.start_method, params={"seconds": nap},
                             image=image)
                  for image in images for nap in options.naps
                  for count in parse.cpu_counts(shared.cpus, len(cpus))]
        return points, {}

    def estimate(self, point, prepared):
        return float(point.params_dict.get("seconds", 1.0))

    def point_label(self, point):
        what = (f"nap {point.params_dict['seconds']} s" if point.variant == "sleep"
                else point.variant)
        return f"{what}, {point.where()}"

    def section(self, trials, summary, out, meta, say):
        import matplotlib.pyplot as plt

        from lab.present.charts import save
        from lab.present.report import Section
        from lab.present.tables import Table
        rows = [[f"{row['param.seconds']:g}", str(row["cpus"]), str(row["n"]),
                 f"{row['median_s']:.4f}"] for _, row in summary.iterrows()]
        table = Table(["nap s", "CPUs", "n", "median s"], rows)
        say(table.text())
        figure, axes = plt.subplots()
        axes.bar([str(r[0]) for r in rows], [float(r[3]) for r in rows])
        axes.set_xlabel("nap asked (s)")
        axes.set_ylabel("median timed section (s)")
        charts = save(figure, out, "naps")
        return (Section(self.title, self.anchor).add("table", table, "Every nap")
                .add("charts", [c for c in charts if c.suffix == ".png"]))
