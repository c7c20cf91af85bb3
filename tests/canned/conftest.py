"""tests/canned: the helper modules beside these tests are importable (``import legacy_cases``)."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
