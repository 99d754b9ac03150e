"""Facts of a host: its CPUs and topology (topology.py), kernel, cgroup, CPU model (facts.py)."""
