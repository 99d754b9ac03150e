"""The matrix: points x rounds, interleaved and shuffled with a recorded seed.

A point is one configuration; a trial is one measurement of a point in one round. Every round
holds one trial of every point, shuffled, so a noisy machine's drift spreads over all points.
Round 0 is a warm-up round when `discard_first_round` is set: measured, kept, marked warmup.
"""

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field

from lab.backends import HOST_PYTHON
from lab.run.options import BadInput

LIMITS = ("cpuset", "quota")
MAX_TRIALS = 200_000  # a run of more trials would not end in a week even at 3 s a trial


@dataclass(frozen=True)
class Point:
    experiment: str
    variant: str
    limit: str            # "cpuset" | "quota"
    cpus: int             # CPU count of the point (for quota: the CPUs the quota is spread over)
    cpuset: tuple         # CPU ids the trial is pinned to
    quota: float | None   # CPUs of CFS quota, or None
    placement: str
    workers: int | None   # None: Pool()'s default size
    start_method: str
    params: tuple = ()    # sorted (key, value) pairs; a tuple so the point is hashable
    image: str = ""       # which trial image runs it (its base image name; "local" on the host)
    host: str = ""        # which host runs it (--hosts); "" for a run on the default host alone

    @property
    def params_dict(self):
        return dict(self.params)

    @property
    def point_id(self):
        """Readable and stable: the same configuration gets the same id on any machine."""
        fields = self.as_dict()
        if not self.host:  # single-host runs keep the ids they had before --hosts existed
            del fields["host"]
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
        limit = f"q{self.quota:g}" if self.limit == "quota" else f"c{self.cpus}"
        workers = "wdefault" if self.workers is None else f"w{self.workers}"
        return f"{self.experiment}.{self.variant}.{limit}.{workers}.{digest[:6]}"

    def where(self):
        """The point's CPUs in words, and its image when a run has several: what every family's
        label starts from."""
        limit = f"quota {self.quota:g}" if self.limit == "quota" else f"cpus {self.cpus}"
        if self.image and self.image != HOST_PYTHON:  # which base (Python) when a run has several
            limit += f", on {self.image.rsplit('/', 1)[-1]}"
        if self.host:  # which host, in a run on several
            limit += f", host {self.host}"
        return limit

    def as_dict(self):
        data = asdict(self)
        data["cpuset"] = list(self.cpuset)
        data["params"] = dict(self.params)
        return data


def make_point(**fields):
    params = fields.pop("params", {}) or {}
    return Point(params=tuple(sorted(params.items())), cpuset=tuple(fields.pop("cpuset")), **fields)


def points_of(plan_file):
    """The Points of a records.PlanFile."""
    fields = set(Point.__dataclass_fields__)
    return [make_point(**{k: v for k, v in point.model_dump().items() if k in fields})
            for point in plan_file.points]


def plan_of(plan_file):
    """The Plan of a records.PlanFile (same points, seed and repeat: the same trials, in order)."""
    return Plan(points_of(plan_file), plan_file.repeat, plan_file.seed,
                plan_file.discard_first_round)


@dataclass(frozen=True)
class Trial:
    point: Point
    round: int       # 0-based position in the run
    repeat: int      # 1-based measured repeat; 0 for a warm-up trial
    warmup: bool

    @property
    def key(self):
        """What identifies a trial in a run (resume compares these)."""
        return (self.point.point_id, self.round)


@dataclass
class Plan:
    points: list
    repeat: int
    seed: int
    discard_first_round: bool = True
    trials: list = field(init=False)

    def __post_init__(self):
        trials = len(self.points) * self.rounds
        if trials > MAX_TRIALS:  # refused before the trials are built: they would fill memory
            raise BadInput(f"the plan has {len(self.points)} points x {self.rounds} rounds = "
                           f"{trials:,} trials, over the {MAX_TRIALS:,} a run may hold; lower "
                           f"--repeat or the matrix")
        self.trials = interleave(self.points, self.repeat, self.seed, self.discard_first_round)

    @property
    def rounds(self):
        return self.repeat + (1 if self.discard_first_round else 0)

    def as_dict(self):
        return {"repeat": self.repeat, "seed": self.seed,
                "discard_first_round": self.discard_first_round,
                "points": [p.as_dict() for p in self.points]}


def interleave(points, repeat, seed, discard_first_round):
    """One trial of every point per round, each round shuffled by its own seeded generator."""
    rng = random.Random(seed)
    trials = []
    rounds = repeat + (1 if discard_first_round else 0)
    for round_index in range(rounds):
        order = list(points)
        rng.shuffle(order)
        warmup = discard_first_round and round_index == 0
        repeat_number = 0 if warmup else round_index + (0 if discard_first_round else 1)
        trials += [Trial(p, round_index, repeat_number, warmup) for p in order]
    return trials
