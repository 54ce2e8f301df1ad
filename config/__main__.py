"""`python -m config`: every setting with its default, its current value and its meaning."""

from __future__ import annotations

from config.settings import describe

if __name__ == "__main__":
    rows = [("setting", "default", "now", "meaning"), *describe()]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
