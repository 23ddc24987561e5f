"""Runs `dispatch argv` and reports which heavy modules it imported.

`python -c PROBE argv...`: stderr's last line is `IMPORTED ["django", ...]`,
the thin client's promise being that a call over REST imports neither."""

PROBE = """
import json, sys
from dispatchsite.cli import main
try:
    main()
finally:
    heavy = sorted(m for m in ("django", "pydantic") if m in sys.modules)
    sys.stderr.write("IMPORTED " + json.dumps(heavy) + "\\n")
"""
