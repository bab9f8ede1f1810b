"""lowbench's asv suite (bench_*.py) and stand-alone benchmark scripts (run with python)."""
