"""The dedup settings checked before any work: by the stage's plan, and by `crawl2gpt run` and
`crawl2gpt stage dedup` before their first stage (pipeline/preflight.py), so a bad value fails in a
second instead of after extraction and filtering.

Light on purpose (no datasketch, redis imported only for backend=redis): the run's preflight
imports it before every run.
"""

from __future__ import annotations

from pipeline.dedup.config import DedupConfig
from pipeline.dedup.shingles import _POSITION_MULT
from pipeline.errors import ConfigError

MAX_NGRAM = len(_POSITION_MULT)  # one multiplier per word position of a shingle hash
PREFLIGHT_REDIS_S = 3.0  # how long the checks before a run wait for Redis: a typo'd host must not cost a minute


def check_config(cfg: DedupConfig) -> None:
    """LSH needs two bands to have an S-curve; shingles are at most MAX_NGRAM words."""
    if cfg.bands < 2:
        raise ConfigError(f"dedup.bands={cfg.bands}: LSH needs at least 2 bands (FineWeb: 14)")
    if cfg.ngram > MAX_NGRAM:
        raise ConfigError(f"dedup.ngram={cfg.ngram}: shingles of up to {MAX_NGRAM} words are supported (FineWeb: 5)")


def check_redis(cfg: DedupConfig, timeout_s: float | None = None) -> None:
    """With dedup.backend=redis, a Redis must answer PING at dedup.redis_host:redis_port within
    `timeout_s` (default dedup.redis_timeout_s). One try: redis-py's default retries would turn a
    host that never answers into ten times the timeout."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from pipeline.dedup.redis_keys import connection

    wait = cfg.redis_timeout_s if timeout_s is None else min(timeout_s, cfg.redis_timeout_s)
    settings = dict(connection(cfg), socket_timeout=wait, socket_connect_timeout=wait, retry=Retry(NoBackoff(), 0))
    client = redis.Redis(**settings)
    try:
        client.ping()
    except redis.RedisError as err:
        raise ConfigError(
            f"dedup.backend=redis but no Redis answers at {cfg.redis_host}:{cfg.redis_port} within {wait:g} s ({err}); "
            "start redis-server there, fix dedup.redis_host/redis_port, or set dedup.backend=auto"
        ) from None
    finally:
        client.close()
