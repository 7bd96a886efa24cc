#!/usr/bin/env python3
"""Benchmark harness CLI: `python bench.py --help`."""
import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
