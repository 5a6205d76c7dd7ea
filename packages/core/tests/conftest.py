import sys
from pathlib import Path

# --import-mode=importlib does not put the test directory on sys.path; the naive
# reference helpers (_*.py) live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))
