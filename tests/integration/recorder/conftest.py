"""Lets the tests here import ``rtpgen``, which is also run as a script (import-mode=importlib
does not put test folders on ``sys.path``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
