"""Exception types users can act on: each names the file or setting and the fix."""


class Crawl2GPTError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(Crawl2GPTError):
    """A config value or path is invalid; raised before any work starts."""


class InputError(Crawl2GPTError):
    """An input path, URL or folder cannot be used (missing, empty, wrong stage)."""


class CorruptWarcError(Crawl2GPTError):
    """A WARC file cannot be read past some point (bad gzip member, garbage bytes)."""


class StageIncompleteError(Crawl2GPTError):
    """A stage folder has no valid _stage.json manifest, so it was never finished."""


class ShardChecksumError(Crawl2GPTError):
    """A token shard's bytes do not match the checksum in manifest.json."""


class TokenizerError(Crawl2GPTError):
    """The tokenizer cannot be trained or loaded (empty corpus, vocabulary too large)."""


class CheckpointError(Crawl2GPTError):
    """A checkpoint is missing, incomplete or does not match the model."""


class ExportError(Crawl2GPTError):
    """A checkpoint cannot be written as a Hugging Face folder: an option with no transformers equivalent."""


class RedisIndexError(Crawl2GPTError):
    """The Redis server holding dedup's LSH index (dedup.backend=redis) stopped answering or refused a write mid-run."""


class DiskFullError(Crawl2GPTError):
    """A stage's write failed for lack of space: a full disk (ENOSPC), a quota (EDQUOT) or a file-size limit (EFBIG)."""


class RunLockedError(Crawl2GPTError):
    """Another crawl2gpt process holds the run folder's lock (pipeline/run_lock.py): it names that process."""


class PrefectServerLostError(Crawl2GPTError):
    """The Prefect server a run reports to (PREFECT_API_URL) stopped answering past the client's retries."""
