"""What a person reads: tables (tables.py), charts (charts.py and one module per family),
the report (report.py: report.md and one self-contained report.html) and compare.py.
Runs nothing: it reads run folders and writes files."""
