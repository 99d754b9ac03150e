"""From records to numbers: trials and points in pandas (trials.py), statistics (stats.py),
fits (fits.py), warnings about the data (warnings.py), and each family's own tables (scaling.py,
ipc.py). Never imports the run machinery (lab.run) or draws anything."""
