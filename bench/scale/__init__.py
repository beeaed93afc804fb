"""`python -m bench.scale`: the same reads at 1x, 10x and 50x the 20,000-task database (issue #23)."""
