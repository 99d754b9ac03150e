"""Where the lab's own files are, from a checkout and from an installed package alike.

The one place that knows it: the folder that holds the `lab` package (a checkout's root, or
site-packages once installed), the Dockerfile of the trial image and the task defaults. In a
checkout lab/package_data/ holds links to docker/Dockerfile and invoke.yaml (each kept where
people edit it); a wheel carries copies of them, so an installed lab builds its image and knows
its defaults without the checkout.
"""

from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = LAB_DIR.parent  # holds lab/: the image's build context and staged code come from it
# resolved: the build context must carry the file itself, never a link to a path outside it
DOCKERFILE = (LAB_DIR / "package_data" / "Dockerfile").resolve()
DEFAULTS = (LAB_DIR / "package_data" / "invoke.yaml").resolve()  # every task's defaults
