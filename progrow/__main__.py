"""`python -m progrow …`: the `progrow` command (dataset, train, generate, interpolate, metrics, fid)."""

import sys
from importlib import import_module

if __name__ == "__main__":
    # Looked up at run time: the library itself never imports the adapters; only this entry point does.
    sys.exit(import_module("progrow.adapters.cli").main())
