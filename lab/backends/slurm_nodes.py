"""The nodes a Slurm run holds: how many at once (lab.slurm.max_nodes, default the partition's
idle nodes), and with --per-node N > 1 which node each *trial* goes to.

Points are not bound to nodes: a point's trials are dealt over the nodes (each trial to the
node with a free place where that point has had the fewest trials so far), so T(1) and T(c)
are both medians over the same nodes and no speedup divides one node by another. The record's
`host` is the run's host (`<partition>@<cluster>`); the node a trial ran on is its `node`.
"""

import threading


def idle_nodes(nodes):
    """The names of the nodes whose state is IDLE (no job of anyone's on them)."""
    return sorted(name for name, fields in nodes.items()
                  if str(fields.get("State", "")).split("+")[0].rstrip("*~#!%$@^-") == "IDLE")


def max_nodes_of(setting, nodes, name="lab.slurm.max_nodes"):
    """(how many nodes the run holds at once, where that number comes from), or ValueError
    with the allowed values."""
    if setting in (None, "", "auto"):
        idle = idle_nodes(nodes)
        return max(1, len(idle)), (f"the partition's idle nodes ({len(idle)})" if idle else
                                   "no node is idle: 1")
    try:
        count = int(str(setting).strip())
        assert count >= 1
    except (ValueError, AssertionError):
        raise ValueError(f"{name} {setting!r}: not allowed; allowed: auto (the "
                         f"partition's idle nodes) or a whole number of at least 1") from None
    return min(count, len(nodes)), f"{name} {count}"


class NodeDealer:
    """Places on the nodes, `per_node` each, shared by every lane of a run: a trial takes one
    (the node where its point has been least, then the least busy, then by name), runs there
    (`--nodelist`), and gives it back. With as many lanes as places a place is always free."""

    def __init__(self, names, per_node):
        self.names = sorted(names)
        self.per_node = per_node
        self.busy = {name: 0 for name in self.names}
        self.dealt = {}                    # point -> {node: trials dealt}
        self.condition = threading.Condition()

    def take(self, point):
        with self.condition:
            while True:
                free = [n for n in self.names if self.busy[n] < self.per_node]
                if free:
                    seen = self.dealt.setdefault(point, {})
                    node = min(free, key=lambda n: (seen.get(n, 0), self.busy[n],
                                                    self.names.index(n)))
                    seen[node] = seen.get(node, 0) + 1
                    self.busy[node] += 1
                    return node
                self.condition.wait(1.0)

    def give_back(self, node):
        with self.condition:
            self.busy[node] = max(0, self.busy[node] - 1)
            self.condition.notify_all()
