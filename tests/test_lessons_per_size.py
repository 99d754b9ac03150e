"""The pool claim decided per task size (the break-even shows in the verdicts), the Event row
labelled an illustration, and a warning naming many points shown grouped in report.md and
report.html. Made-up trials and warnings: no process starts."""

import pandas as pd

from lab.analysis import lessons
from lab.analysis.lessons import judge as v
from lab.analysis.warnings import grouped_points, listed_warning, normalised
from lab.present import lessons_report, report
from tests.test_lessons_verdicts import trials_of


def _pool(size, process, pool):
    its = {"task_iterations": size}
    return [("pool_vs_process", {"runner": "process_per_task", **its}, "per_task_us", process,
             {}),
            ("pool_vs_process", {"runner": "pool", "chunksize": 1, **its}, "per_task_us", pool,
             {})]


def test_the_pool_claim_has_a_verdict_per_task_size_each_with_its_interval():
    trials = trials_of(*_pool(1000, [300, 310, 320], [100, 101, 102]),  # about 3x: held
                       *_pool(100000, [90, 95, 99], [100, 101, 102]))  # below 1: not held
    summary = lessons.summary(trials)
    table = lessons.verdicts(trials, summary)
    mine = table[table["claim"].str.startswith("A pool saves")]
    assert mine["figure"].str.endswith(" loops").all() and len(mine) == 2
    assert mine["figure"].tolist()[0].endswith("1,000 loops")  # smallest first
    assert mine["verdict"].tolist() == [v.HELD, v.NOT_HELD]
    assert (mine["low"] <= mine["ratio"]).all() and (mine["ratio"] <= mine["high"]).all()
    said = [c for c in lessons.claims(summary, lessons.behaviour_checks(trials), table)
            if c[0].startswith("A pool saves")]
    assert said[0][1] == v.PARTLY


def test_held_at_short_tasks_and_cant_tell_at_long_ones_says_so():
    trials = trials_of(*_pool(1000, [300, 310, 320], [100, 101, 102]),
                       *_pool(100000, [80, 100, 130], [100, 101, 102]))  # straddles 1
    summary = lessons.summary(trials)
    table = lessons.verdicts(trials, summary)
    said = [c for c in lessons.claims(summary, lessons.behaviour_checks(trials), table)
            if c[0].startswith("A pool saves")]
    assert said[0][1] == v.PARTLY and said[0][2].startswith("Held for short tasks")


def test_the_event_row_is_labelled_an_illustration():
    summary = pd.DataFrame([{"python": "3.13.5", "lesson": "sync", "item": item, "cpus": 2,
                             "resolved_start_method": "fork", "workers": 4, "n": 3,
                             "headline": "op_us", "headline_median": 10.0,
                             "headline_low": 9.0, "headline_high": 11.0, "failed": 0,
                             "median_s": 0.3, "cv": 0.01, "outliers": 0}
                            for item in ("lock", "event")])
    table = lessons_report.figures_table(summary).markdown()
    event = next(line for line in table.splitlines() if "| event" in line)
    assert "illustration" in event and "Barrier" in event
    lock = next(line for line in table.splitlines() if "| lock" in line)
    assert "illustration" not in lock


def _many():
    points = [(f"sync {item}, {cpus} CPU{'s' if cpus > 1 else ''}, Python 3.13.5",
               f" (CV {10 + cpus}%)") for item in ("lock", "rlock", "barrier") for cpus in (1, 2)]
    points.append(("start_cost fork, 1 CPU, Python 3.13.5", ": 150.0 ms; multiply --size"))
    return listed_warning("spread-too-wide", "7 points vary by more than 10%", points,
                          "raise --repeat")


def test_a_warning_naming_many_points_groups_them_by_lesson():
    item = _many()
    assert item["message"].startswith("7 points vary by more than 10%: sync lock, 1 CPU")
    assert "and 1 more" in item["message"]  # the sentence stays as it was
    common, groups = grouped_points(normalised([item])[0])
    assert common == "Python 3.13.5"
    assert [g for g, _ in groups] == ["sync", "start_cost"]
    assert groups[0][1][0] == "lock, 1 CPU (CV 11%)" and len(groups[0][1]) == 6
    assert groups[1][1] == ["fork, 1 CPU: 150.0 ms; multiply --size"]
    few = listed_warning("outliers", "2 trials", [("strong, 1 CPU", " (1)")], "look")
    assert grouped_points(few) is None
    assert grouped_points({"code": "load-high", "message": "m", "advice": ""}) is None


def test_report_md_and_html_show_the_grouped_points(tmp_path):
    item, plain = _many(), {"code": "load-high", "message": "load 3", "advice": "wait"}
    page = report.Report(title="t", summary_line="s", facts_title="What was run, on what",
                         facts=[("run", "r")], sections=[], warnings=[plain, item], methods=[])
    report.write_markdown(tmp_path, page)
    report.write_html(tmp_path, page)
    md = (tmp_path / report.MARKDOWN).read_text()
    assert "- **spread-too-wide**: 7 points vary by more than 10%; all at Python 3.13.5:" in md
    assert "  - **sync**: lock, 1 CPU (CV 11%) · lock, 2 CPUs (CV 12%)" in md
    assert "*What to do:* raise --repeat" in md and "- **load-high**: load 3" in md
    html = (tmp_path / report.HTML).read_text()
    assert '<table class="points">' in html and "<th class=\"l\">start_cost</th>" in html
    assert "raise --repeat" in html


def test_docs_images_gives_every_verdict_word_the_report_cells_colour():
    from benchmarks.docs_images import VERDICT_COLOURS
    from lab.present.lessons_verdicts import CSS_CLASS
    cell = {w: {"v-busy": "v-none"}.get(c, c) for w, c in CSS_CLASS.items()}  # one grey in CSS
    words = [v.HELD, v.NOT_HELD, v.CANT_TELL, v.PARTLY, v.FACT, v.NO_VERDICT, v.BUSY]
    assert set(words) <= set(VERDICT_COLOURS)
    for a in words:  # one colour per report cell: same cell, same tag; apart otherwise
        for b in words:
            same_cell = cell[a] == cell[b]
            assert (VERDICT_COLOURS[a] == VERDICT_COLOURS[b]) == same_cell, (a, b)
