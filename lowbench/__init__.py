"""lowbench: reproducible benchmarks for efficient low-light RAW enhancement on edge devices."""

__version__ = "0.1.0"
