"""HarmoVid Studio: ``python main.py [PROJECT]`` opens the Studio (``--demo``: the bundled demo project)."""

import sys

from app.main import main

if __name__ == "__main__":
    sys.exit(main())
