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


GENERIC = ["lab/run", "lab/present/report.py", "lab/present/compare.py", "lab/present/tables.py",
           "lab/present/charts.py", "lab/analysis/trials.py", "lab/analysis/warnings.py",
           "lab/records.py", "lab/commands.py"]


def test_the_generic_machinery_never_names_a_family_or_branches_on_a_backend():
    root = LAB.parent
    offenders = []
    for entry in GENERIC:
        for path in sorted((root / entry).rglob("*.py")) if (root / entry).is_dir() else [root / entry]:
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                code = line.split("#", 1)[0]
                if any(word in code for word in ('"scaling"', '"ipc"', "'scaling'", "'ipc'",
                                                  '"scale"', "'scale'", "name == \"docker",
                                                  "name != \"docker", '== "docker"', '== "local"')):
                    offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert offenders == []


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
