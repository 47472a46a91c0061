#!/usr/bin/env python3
"""Command-line entry: `python export.py --model … --out …` (same as `python -m kvscope_export`)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kvscope_export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
