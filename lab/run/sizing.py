"""Trials sized from what was measured: each point's warm-up trial tells its family how long the
point's work takes, and the measured rounds get parameters (a message count, say) that make their
timed section last about --min-seconds. pyperf calibrates its loops the same way.

The family decides (`Family.trial_params`); this module keeps what was decided for the run: in
plan.json's `sizing` block, written as soon as a warm-up trial has set it, so that --resume and
--plan run exactly the same parameters, and in every record's `params`.
"""

import json
import threading

from lab.run import folder as runfolder


class Sizing:
    """The parameters each point's trials run with: chosen by the family after the point's
    warm-up trial, kept in plan.json; `known` (point_id -> params) comes from a run's plan.json."""

    def __init__(self, family, folder=None, known=None):
        self.family = family
        self.folder = folder
        self.chosen = dict(known or {})
        self.lock = threading.Lock()  # hosts run side by side: one plan.json writer at a time

    def params(self, point):
        """The params a trial of `point` runs with now (the spec's and the record's)."""
        if point.point_id in self.chosen:
            return dict(self.chosen[point.point_id])
        return self.family.trial_params(point, None)

    def learn(self, trial, record):
        """After a trial: a warm-up that measured its point sets the point's params for good."""
        point = trial.point
        if not trial.warmup or point.point_id in self.chosen:
            return
        params = self.family.trial_params(point, record)
        if params is None or params == point.params_dict:
            return  # nothing to size (given counts) or nothing measured (a failed warm-up)
        with self.lock:
            self.chosen[point.point_id] = params
            if self.folder is not None:
                plan = json.loads(self.folder.plan_path.read_text())
                plan["sizing"] = self.chosen
                runfolder.write_json_atomic(self.folder.plan_path, plan)


def remapped(sizing, old_points, new_points):
    """A plan's sizing for the same points under new ids (a --plan rerun on another image or
    other hosts): matched on everything but the image and the host."""
    def key(point):
        return (point.experiment, point.variant, point.limit, point.cpus, point.cpuset,
                point.quota, point.placement, point.workers, point.start_method, point.params)
    chosen = {key(point): sizing[point.point_id] for point in old_points
              if point.point_id in (sizing or {})}
    return {point.point_id: chosen[key(point)] for point in new_points if key(point) in chosen}
