"""``python -m argen.compare``: compare runs side by side (``argen.report.compare``)."""

import sys

from argen.report.compare import main

if __name__ == "__main__":
    sys.exit(main())
