#!/usr/bin/env python3
"""Runs every golden-vector generator in this folder (gen_*.py) into $LOWBIT_GOLDEN_DIR.

Each generator uses an independent implementation (ml_dtypes, gguf.quants) and writes binary files
that the C++ golden tests compare bit for bit; see each generator's docstring for its source.
"""
import os
import pathlib
import runpy
import sys

out = pathlib.Path(os.environ.get("LOWBIT_GOLDEN_DIR", "golden"))
out.mkdir(parents=True, exist_ok=True)
here = pathlib.Path(__file__).parent
for script in sorted(here.glob("gen_*.py")):
    print(f"golden: {script.name} -> {out}", flush=True)
    runpy.run_path(str(script), run_name="__main__")
sys.exit(0)
