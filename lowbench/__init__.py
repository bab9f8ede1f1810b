"""lowbench: reproducible benchmarks for efficient low-light RAW enhancement (SID) on edge devices."""

__version__ = "0.1.0"
