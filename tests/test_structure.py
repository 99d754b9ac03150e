"""The shape ARCHITECTURE.md draws, held by reading the code: data flows one way, the generic machinery
never names a family or a backend, and no module imports itself through others."""

import ast
from pathlib import Path

import pytest

LAB = Path(__file__).resolve().parent.parent / "lab"


def module_name(path):
    parts = path.relative_to(LAB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    return {module_name(path): path for path in LAB.rglob("*.py")}


def imports_of(path, known):
    """Every lab module `path` imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


@pytest.fixture(scope="module")
def graph():
    known = modules()
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def test_no_import_circles(graph):
    def visit(name, trail):
        if name in trail:
            return trail[trail.index(name):] + [name]
        for target in sorted(graph.get(name, ())):
            if target.startswith(name + "."):  # a package importing its own modules
                continue
            cycle = visit(target, trail + [name])
            if cycle:
                return cycle
        return None
    for name in graph:
        cycle = visit(name, [])
        assert cycle is None, " -> ".join(cycle)


RULES = [  # (what, the folder's modules, the modules they must not import)
    ("analysis never imports the run machinery, backends, families or presentation",
     "lab.analysis", ("lab.run", "lab.backends", "lab.families", "lab.present", "lab.commands")),
    ("presentation runs nothing", "lab.present",
     ("lab.run", "lab.backends", "lab.families", "lab.commands")),
    ("the run machinery never names a family", "lab.run", ("lab.families",)),
    ("the trial side imports only itself and sysinfo", "lab.experiments",
     ("lab.run", "lab.backends", "lab.families", "lab.analysis", "lab.present", "lab.hosts",
      "lab.records", "lab.commands", "lab.version")),
    ("backends know no family", "lab.backends", ("lab.families", "lab.analysis", "lab.present")),
]


@pytest.mark.parametrize("what, folder, forbidden", RULES, ids=[r[0] for r in RULES])
def test_data_flows_one_way(graph, what, folder, forbidden):
    wrong = sorted(f"{name} imports {target}" for name, targets in graph.items()
                   if name == folder or name.startswith(folder + ".")
                   for target in targets if target.startswith(forbidden))
    assert wrong == [], what


FAMILY_BLIND = ["lab/run", "lab/present/report.py", "lab/present/compare.py",
                "lab/present/tables.py", "lab/present/charts.py", "lab/analysis/trials.py",
                "lab/analysis/warnings.py", "lab/records.py", "lab/commands.py"]
BACKEND_BLIND = ["lab/run", "lab/commands.py", "lab/present", "lab/analysis", "lab/records.py"]
FAMILY_NAMES = {"scale", "scaling", "ipc"}
BACKEND_NAMES = {"docker", "local", "slurm", "multihost"}
# the words of one backend's world: what generic code must not call its things
BACKEND_WORDS = ("docker", "container", "slurm", "srun", "scontrol", "squeue", "scancel", "ssh",
                 "dockerd")
BACKEND_PACKAGES = {"docker", "requests", "paramiko", "urllib3"}


def backend_modules():
    """lab.backends' own modules (docker, slurm, image ...): one backend's code each."""
    return {f"lab.backends.{path.stem}" for path in (LAB / "backends").glob("*.py")
            if path.stem != "__init__"}


def _constants(node):
    """The string constants `node` is, or holds when a tuple, list or set of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [value for item in node.elts for value in _constants(item)]
    return []


def _identifiers(node):
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, ast.keyword) and node.arg:
        return [node.arg]
    if isinstance(node, ast.alias):
        return [node.asname or node.name.rsplit(".", 1)[-1]]
    return []


def backend_violations(source, where="<source>", modules=frozenset()):
    """What in `source` knows a backend: an import of a backend's module or of a package only a
    backend uses (docker, requests ...), a comparison with a backend's name, an identifier in a
    backend's words. `modules`: the backend modules (lab.backends.docker ...)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            imported = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            imported = []
        for name in imported:
            if name.split(".")[0] in BACKEND_PACKAGES or name in modules:
                found.append(f"{line}: imports {name}")
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                named = BACKEND_NAMES.intersection(_constants(side))
                if named:
                    found.append(f"{line}: compares with the backend name {sorted(named)[0]!r}")
        for name in _identifiers(node):
            word = next((w for w in BACKEND_WORDS if w in name.lower()), None)
            if word:
                found.append(f"{line}: the identifier {name} holds {word!r}")
    return found


def family_violations(source, where="<source>"):
    """A family's name as a string in `source` (generic code asks the family, never names it)."""
    return [f"{where}:{node.lineno}: names the family {node.value!r}"
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and node.value in FAMILY_NAMES]


def files(entries):
    root = LAB.parent
    for entry in entries:
        path = root / entry
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def test_the_generic_machinery_knows_no_backend():
    modules = backend_modules()
    offenders = [v for path in files(BACKEND_BLIND)
                 for v in backend_violations(path.read_text(), path.relative_to(LAB.parent),
                                             modules)]
    assert offenders == []


def test_the_generic_machinery_never_names_a_family():
    offenders = [v for path in files(FAMILY_BLIND)
                 for v in family_violations(path.read_text(), path.relative_to(LAB.parent))]
    assert offenders == []


PLANTED = {  # one violation each: the checks above must see every one
    "import docker\n": "imports docker",
    "from lab.backends.slurm import SlurmBackend\n": "imports lab.backends.slurm",
    "from lab.backends import docker\n": "imports lab.backends.docker",
    "import requests.exceptions\n": "imports requests.exceptions",
    "if backend.name == 'docker':\n    pass\n": "compares with the backend name 'docker'",
    "ok = name in ('local', 'x')\n": "compares with the backend name 'local'",
    "def stop_containers(run):\n    pass\n": "the identifier stop_containers holds 'container'",
    "x = options.slurm_partition\n": "the identifier slurm_partition holds 'slurm'",
    "f(ssh_url=1)\n": "the identifier ssh_url holds 'ssh'",
}


@pytest.mark.parametrize("source", PLANTED, ids=[s.split("\n")[0] for s in PLANTED])
def test_the_backend_check_sees_a_planted_violation(source):
    found = backend_violations(source, "planted.py", backend_modules())
    assert any(PLANTED[source] in line for line in found), found


def test_the_checks_pass_clean_code_and_see_a_family_name():
    clean = ("from lab import backends\nfrom lab.backends import DEFAULT_HOST, BackendUnavailable\n"
             "if backend.name == shared.backend:\n    hosts = [DEFAULT_HOST]\n"
             "head, _, rest = text.partition(' ')\n")
    assert backend_violations(clean, "clean.py", backend_modules()) == []
    assert family_violations(clean) == []
    assert family_violations("if task == 'ipc':\n    pass\n") == [
        "<source>:1: names the family 'ipc'"]


def test_lab_init_is_free_of_host_dependencies():
    """Nothing imported when `import lab` runs (the trial image has the standard library only);
    the Python API (lab.api) is imported inside the module's __getattr__, on first use."""
    tree = ast.parse((LAB / "__init__.py").read_text())
    imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert not [node for node in tree.body if node in imports]
    lazy = [node for node in tree.body if isinstance(node, ast.FunctionDef)
            and node.name == "__getattr__"]
    assert [(node.module, [a.name for a in node.names]) for node in imports] == [("lab", ["api"])]
    assert lazy and all(node in list(ast.walk(lazy[0])) for node in imports)


def test_only_the_front_ends_import_the_api_and_the_command_line(graph):
    """lab.api (the Python functions) and lab.cli (the tasks, `multicore-lab`) sit on top: the
    machinery below never reaches up to them (lab/__init__ hands out lab.api lazily)."""
    front = ("lab.api", "lab.cli")
    wrong = sorted(f"{name} imports {target}" for name, targets in graph.items()
                   if not name.startswith(front) and name != "lab"
                   for target in targets if target.startswith(front))
    assert wrong == []


def test_import_lab_loads_nothing_host_side():
    """`import lab` (as the trial does) loads no host-side dependency; lab.scale loads the API."""
    import subprocess
    import sys
    code = ("import sys, lab; assert 'lab.api' not in sys.modules; "
            "print(sorted(m for m in ('pandas', 'invoke', 'pydantic', 'docker', 'matplotlib') "
            "if m in sys.modules)); lab.scale; assert 'lab.api' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=LAB.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_image_digest_covers_only_what_runs_in_the_trial(tmp_path):
    """A host-side change (an estimate, the version) must not make --resume refuse a run's image;
    a change to trial code must."""
    import shutil

    from lab.backends.image import code_digest
    copy = tmp_path / "project"
    shutil.copytree(LAB, copy / "lab", ignore=shutil.ignore_patterns("__pycache__"))
    before = code_digest("base:1", root=copy)
    (copy / "lab" / "version.py").write_text('__version__ = "99.0"\n')
    budget = copy / "lab" / "families" / "ipc_budget.py"
    budget.write_text(budget.read_text().replace("_BATCH_ITEM_US = 0.15", "_BATCH_ITEM_US = 0.3"))
    assert code_digest("base:1", root=copy) == before
    trial = copy / "lab" / "experiments" / "probe.py"
    trial.write_text(trial.read_text() + "\n# changed\n")
    assert code_digest("base:1", root=copy) != before
