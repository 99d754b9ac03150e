"""The README's pictures of what a run gives, remade from the runs recorded under docs/runs/.

    .venv/bin/python -m benchmarks.docs_images [--runs docs/runs] [--out docs] [--width 800]
                                               [--no-screenshot]

Each recorded run is a folder docs/runs/<run id>/ holding the three files a run folder's report
is drawn from (meta.json, plan.json, raw.jsonl). For the newest scale, ipc and lessons run there,
the run is copied into a temporary folder and redrawn there by the lab's own `invoke report`
(lab.commands.report; nothing is run, docs/runs/ is never written), and four images are made,
each at most --width pixels wide:

    speedup.png   the scale run's speedup.png
    ipc.png       the ipc run's ipc_channels.png (Pipe vs Queue vs JoinableQueue)
    lessons.png   the lessons run's verdicts: every tutorial claim it measured, held or not,
                  drawn from the report's own claims (lab.analysis.lessons.claims)
    report.png    the top of the scale run's report.html, by headless Chromium

It prints one line per image naming the run, its command and the machine it ran on (from the
run's meta.json), the captions the README uses. Without Chromium (`chromium`,
`chromium-browser` or `google-chrome` on PATH, or $CHROMIUM) it refuses in one line before
writing anything; --no-screenshot makes the other three. Bad input is refused in one line,
exit status 2.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_FILES = ("meta.json", "plan.json", "raw.jsonl")
TASKS = ("scale", "ipc", "lessons")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WINDOW = (1200, 900)  # the browser window report.png shows (CSS pixels)
# The report's verdict cells (lab/present/lessons_verdicts.py, report.py's CSS) in a tag's
# stronger shade: held green, not held red, can't tell and partly amber, fact blue, no verdict
# and machine busy grey.
VERDICT_COLOURS = {"held": "#2e7d32", "not held": "#c62828", "can't tell": "#9a6700",
                   "partly": "#9a6700", "fact": "#0969da", "no verdict": "#57606a",
                   "machine busy: no verdict": "#57606a"}
EXIT_BAD_INPUT = 2


class Refusal(Exception):
    """What the user must fix, said in one line."""


# --- the recorded runs -------------------------------------------------------------------------

def recorded_runs(runs_dir):
    """{task: folder} of the newest recorded run of each task under `runs_dir` (run ids begin
    with their UTC time, so the newest sorts last); refuses when one is missing."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise Refusal(f"no folder of recorded runs at {runs_dir}: give --runs a folder holding "
                      f"<run id>/{{{','.join(RUN_FILES)}}}")
    found = {}
    for folder in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        missing = [name for name in RUN_FILES if not (folder / name).is_file()]
        if missing:
            raise Refusal(f"{folder} is not a recorded run: it lacks {', '.join(missing)} "
                          f"(copy meta.json, plan.json and raw.jsonl from the run folder)")
        task = json.loads((folder / "meta.json").read_text()).get("task")
        if task in TASKS:
            found[task] = folder
    absent = [task for task in TASKS if task not in found]
    if absent:
        raise Refusal(f"no recorded {' or '.join(absent)} run under {runs_dir}: record one "
                      f"(`invoke {absent[0]}`) and copy its {', '.join(RUN_FILES)} into "
                      f"{runs_dir}/<run id>/")
    return found


def machine(meta):
    """The machine a run came from, in a few words, from its meta.json."""
    host = meta.get("host") or {}
    backend = meta.get("backend") or {}
    image = meta.get("image") or {}
    cpus = host.get("usable_cpus") or host.get("cpu_count")
    words = [host.get("cpu_model") or "unknown CPU", f"{cpus} CPUs" if cpus else None,
             "a VM" if host.get("virtualisation") == "yes" else None,
             f"kernel {host['kernel']}" if host.get("kernel") else None,
             f"cgroup v{host['cgroup_version']}" if host.get("cgroup_version") else None,
             f"Docker {backend['engine_version']}" if backend.get("engine_version") else None,
             f"Python {image['python']} in the trials" if image.get("python") else None]
    return ", ".join(w for w in words if w)


def command(meta):
    line = (meta.get("lab") or {}).get("command_line") or []
    return " ".join(str(a) for a in line) or "?"


def redraw(run, scratch):
    """The run's report, charts and summary redrawn by the lab's own code from a copy of `run`
    in `scratch`; returns the copy's folder."""
    from lab import commands
    copy = Path(scratch) / run.name
    copy.mkdir()
    for name in RUN_FILES:
        shutil.copy2(run / name, copy / name)
    said = []
    commands.report(scratch, str(copy), say=said.append)
    if not (copy / "report.html").is_file():
        raise Refusal(f"{run}: `invoke report` drew no report.html: {' '.join(said)[-300:]}")
    return copy


# --- the images --------------------------------------------------------------------------------

def shrink(source, target, width):
    """`source` (PNG) at most `width` pixels wide, as a 256-colour PNG at `target` (charts and a
    page of text lose nothing visible to the palette, and weigh a third to a fifth)."""
    from PIL import Image
    with Image.open(source) as image:
        image = image.convert("RGB")
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)),
                                 Image.Resampling.LANCZOS)
        image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                               dither=Image.Dither.NONE)
        image.save(target, optimize=True)
    return target


def shown(path):
    """`path` relative to the working folder when under it (as the README names it)."""
    path = Path(path).resolve()
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def lessons_image(folder, target, width):
    """The verdicts of a lessons run: each tutorial claim it measured, its verdict as a coloured
    tag and the measured sentence, as the report computes them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lab import families
    from lab.analysis import lessons as results
    from lab.analysis.trials import load_trials
    trials = load_trials(folder, warn=lambda *_: None)
    summary = families.get("lessons").summarize(trials)
    checks = results.behaviour_checks(trials)
    claims = results.claims(summary, checks, results.verdicts(trials, summary))
    if not claims:
        raise Refusal(f"{folder.name}: the lessons run measured no tutorial claim")
    failed = int((checks["result"] == "FAIL").sum()) if len(checks) else 0
    dpi = 100
    line_px, top_px, left_px = 15, 46, 10
    text_px = 112  # past the widest tag ("MACHINE BUSY: / NO VERDICT" on two lines)
    wrap = int((width - text_px - 12) / 6.6)  # characters of 8.5 pt that fit beside it
    rows = []  # (verdict or None, text, bold)
    for claim, verdict, sentence in claims:
        for index, line in enumerate(textwrap.wrap(claim, wrap)):
            rows.append((verdict if index == 0 else None, line, True))
        rows += [(None, line, False) for line in textwrap.wrap(sentence, wrap)]
        rows.append((None, "", False))
    height_px = top_px + line_px * len(rows) + 4
    figure = plt.figure(figsize=(width / dpi, height_px / dpi), dpi=dpi)
    pythons = ", ".join(sorted(str(p) for p in trials["python"].dropna().unique()))
    figure.text(left_px / width, 1 - 16 / height_px,
                f"The tutorial's claims, held or not (run {folder.name}, Python {pythons})",
                fontsize=10.5, weight="bold", va="center")
    figure.text(left_px / width, 1 - 33 / height_px,
                f"{len(checks) - failed} of {len(checks)} behaviour checks hold"
                + (f"; {failed} FAILED" if failed else ""), fontsize=9, va="center", color="#333")
    for index, (verdict, line, bold) in enumerate(rows):
        y = 1 - (top_px + line_px * (index + 0.5)) / height_px
        if verdict:
            figure.text(left_px / width, y, verdict.upper().replace(": ", ":\n"),
                        fontsize=7.5, weight="bold", linespacing=1.0,
                        color="white", va="center",
                        bbox=dict(boxstyle="round,pad=0.25", linewidth=0,
                                  facecolor=VERDICT_COLOURS.get(verdict, "#555")))
        if line:
            figure.text(text_px / width, y, line, fontsize=8.5, va="center",
                        weight="bold" if bold else "normal", color="black" if bold else "#222")
    figure.savefig(target, dpi=dpi, facecolor="white")
    plt.close(figure)
    return shrink(target, target, width)


def browser():
    """The headless Chromium to screenshot with: $CHROMIUM, else the first of BROWSERS on PATH."""
    named = os.environ.get("CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    return next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)


def screenshot(chromium, page, target, width, scratch):
    """The top of `page` (an HTML file) in a WINDOW-sized headless browser, shrunk to `width`."""
    shot = Path(scratch) / "screenshot.png"
    profile = Path(scratch) / "chromium-profile"
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={shot}",
            page.resolve().as_uri()]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise Refusal(f"{chromium} took over 120 s to screenshot {page.name}") from None
    if not shot.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise Refusal(f"{chromium} made no screenshot of {page.name} (exit {done.returncode}: "
                      f"{last})")
    return shrink(shot, target, width)


# --- the command -------------------------------------------------------------------------------

def make(runs_dir, out, width=800, screenshots=True, say=print):
    """The four images (three with screenshots=False) in `out`; returns {image path: caption}."""
    if width < 200:
        raise Refusal(f"--width {width} is too small: give 200 pixels or more (default 800)")
    chromium = browser() if screenshots else None
    if screenshots and not chromium:
        named = os.environ.get("CHROMIUM")
        where = (f"$CHROMIUM={named} is not a program" if named
                 else f"none of {', '.join(BROWSERS)} is on PATH")
        raise Refusal(f"no headless Chromium to screenshot report.html: {where}; install it "
                      f"(Debian: apt-get install chromium) or pass --no-screenshot")
    runs = recorded_runs(runs_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    made = {}
    with tempfile.TemporaryDirectory(prefix="docs-images-") as scratch:
        copies = {task: redraw(run, scratch) for task, run in runs.items()}
        metas = {task: json.loads((run / "meta.json").read_text()) for task, run in runs.items()}

        def caption(task, what):
            return (f"{what}: run {runs[task].name} (`{command(metas[task])}`), "
                    f"on {machine(metas[task])}")

        made[shrink(copies["scale"] / "speedup.png", out / "speedup.png", width)] = caption(
            "scale", "speedup chart")
        made[shrink(copies["ipc"] / "ipc_channels.png", out / "ipc.png", width)] = caption(
            "ipc", "messages/s per channel")
        made[lessons_image(copies["lessons"], out / "lessons.png", width)] = caption(
            "lessons", "the lessons' verdicts")
        if chromium:
            made[screenshot(chromium, copies["scale"] / "report.html", out / "report.png",
                            width, scratch)] = caption("scale", "top of report.html")
    for path, text in made.items():
        say(f"{shown(path)}  {text}")
    if not chromium:
        say(f"{shown(out / 'report.png')} not remade (--no-screenshot)")
    return made


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.docs_images", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=str(ROOT / "docs" / "runs"),
                        help="folder of recorded runs, <run id>/{meta.json,plan.json,raw.jsonl}")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where the images go")
    parser.add_argument("--width", type=int, default=800, help="largest width in pixels")
    parser.add_argument("--no-screenshot", action="store_true",
                        help="leave report.png alone (no Chromium needed)")
    args = parser.parse_args(argv)
    try:
        make(args.runs, args.out, args.width, screenshots=not args.no_screenshot)
    except Refusal as why:
        print(f"error: {why}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as error:  # the lab's own refusals (a broken raw.jsonl, ...): one line
        from lab.commands import refusal
        said = refusal(error)
        if said is None:
            raise
        print(said[1], file=sys.stderr)
        return said[0]
    return 0


if __name__ == "__main__":
    sys.exit(main())
