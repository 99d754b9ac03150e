"""multicore-lab: how Python parallel code scales across CPU counts, measured in pinned containers.

This package is imported inside the trial image with the standard library alone: keep it free of
pandas, matplotlib, docker and invoke. Host-side modules (plan, runner, backends, results, plots,
report) import those themselves.
"""

__version__ = "0.1.0"

# The trial record's schema (DESIGN.md): fields may be added, never renamed without a bump.
RECORD_SCHEMA = 1
