import sys
from pathlib import Path

# --import-mode=importlib does not put the test directory on sys.path; the shared test
# models (_vision_models.py) are imported from here.
sys.path.insert(0, str(Path(__file__).parent))
