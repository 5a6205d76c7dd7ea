"""certkit.rank: Ranking / IR robustness: TREC/BEIR data, metrics, rankers, attacks, certified top-K robustness."""

from certkit.rank.version import __version__

__all__ = ["__version__"]
