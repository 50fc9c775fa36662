"""ctrpy's benchmarks against its peers; run ``bench/run.py`` (see bench/README.md)."""
