import sys
from pathlib import Path

# --import-mode=importlib does not put the test directory on sys.path; the shared test
# models (_vision_models.py) are imported from here.
sys.path.insert(0, str(Path(__file__).parent))

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny digits models train faster on one torch thread; opt in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
