#!/usr/bin/env python3
"""The file-heavy workload of the tracing and learn benchmarks: stat + lstat + open + read every file below
each given root (the stat family included, as an agent reading a source tree does)."""
import os
import sys

for root in sys.argv[1:]:
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            try:
                os.stat(p); os.lstat(p)
                with open(p, "rb") as h: h.read()
            except OSError:
                pass
