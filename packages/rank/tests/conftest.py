from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"
WORDNET = Path("/usr/share/wordnet")


@pytest.fixture(scope="session")
def default_coll():
    from certkit.rank.collections import default_collection

    return default_collection()


@pytest.fixture(scope="session")
def bm25(default_coll):
    from certkit.rank.rankers import BM25Ranker

    return BM25Ranker(default_coll.corpus)


@pytest.fixture(scope="session")
def wordnet():
    if not (WORDNET / "index.noun").exists():
        pytest.skip("WordNet (Debian wordnet-base) not installed at /usr/share/wordnet")
    from certkit.rank.synonyms import WordNetSynonyms

    return WordNetSynonyms()


def _shared(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data absent: {p}")
    return p


@pytest.fixture(scope="session")
def shared():
    """shared("ir", "cranfield") -> the path, or skip when ../shared/data lacks it."""
    return _shared
