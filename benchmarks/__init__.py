"""rnnfast's benchmark suite: ``python -m benchmarks.bench --quick|--full`` (see bench.py)."""
