"""`python -m config`: every setting with its default, its current value and its meaning.

`python -m config --markdown` prints the table README's "Configuration" section holds (a test keeps them equal).
"""

from __future__ import annotations

import sys

from config.settings import describe, markdown_table

if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:
        print(markdown_table())
    else:
        rows = [("setting", "default", "now", "meaning"), *describe()]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
