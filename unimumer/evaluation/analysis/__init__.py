"""Error analysis of prediction files: features (per record), statistics, report, plots, run (files)."""
