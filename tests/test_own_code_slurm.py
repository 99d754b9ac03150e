"""Your own code on the Slurm test bed (partition bench): the project folder staged on the
shared filesystem like the lab's code, a function run through the tutorial's variants there, and
--requirements checked against the nodes' Python before the first trial (one line when it lacks
them). From a project folder of the user's own, with `invoke -r <lab>`."""

import json
import shutil

import pytest

from lab.backends import slurm
from tests.conftest import PROJECT_ROOT, invoke
from tests.test_testbed import facts_of, need

pytestmark = pytest.mark.testbed


@pytest.fixture(scope="module")
def cluster():
    facts = facts_of("slurm", "--slurm")
    need(all(shutil.which(c) for c in slurm.COMMANDS),
         "Slurm's commands are not installed: run scripts/setup --slurm")
    need(slurm.controller_answers(), "slurmctld does not answer: run scripts/setup --slurm")
    return facts


@pytest.fixture
def project(tmp_path):
    (tmp_path / "my_work.py").write_text("def crunch(n):\n    return sum(2 for _ in range(n))\n")
    (tmp_path / "requirements.txt").write_text("no-such-package-mcl-y==1.0\n")
    tmp_path.chmod(0o755)
    return tmp_path


def _lab(*args, cwd):
    return invoke("-r", str(PROJECT_ROOT), "scale", "--backend", "slurm", "--partition", "bench",
                  *args, cwd=cwd)


def test_a_function_runs_on_the_cluster_from_its_staged_project_folder(cluster, project):
    done = _lab("--target", "my_work.py:crunch", "--cpus", "1,2", "--variants", "strong",
                "--work", "100000", "--repeat", "1", cwd=project)
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-1500:]
    [run] = [p for p in (project / "results").glob("2*") if p.is_dir()]
    records = [json.loads(line) for line in (run / "raw.jsonl").read_text().splitlines()]
    assert records and all(r["ok"] and r["experiment"] == "target" for r in records)
    assert all(r["check"]["total"] == "the chunks' total equals the serial result"
               for r in records)
    [staged] = (project / "results" / ".code").glob("project-*")
    assert (staged / "my_work.py").is_file() and not (staged / "results").exists()


def test_requirements_the_nodes_python_lacks_are_refused_in_one_line(cluster, project):
    done = _lab("--target", "my_work.py:crunch", "--requirements", "requirements.txt",
                "--cpus", "1", "--repeat", "1", cwd=project)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "lacks no-such-package-mcl-y" in lines[0], done.stderr
    assert not list((project / "results").glob("2*"))  # no run folder
