"""Every extraction rule and setting we considered, measured under site-grouped 5-fold CV.

Called by `python -m benchmarks.extraction_quality --study`. Each candidate is a change to the default
config's output (adding a rule, removing one, or another trafilatura setting); it is kept only
when its F1 beats the baseline's in at least MIN_WINS of the FOLDS folds. A rule with parameters
is tuned the honest way: for each fold, the parameters with the best F1 on the other four folds
are chosen and then scored on the fold itself (nested), so the reported mean is what an unseen
site would get. The table in docs/benchmarks-ingest.md is this function's output.

The phrase lists at the bottom are the line rules normalization used to apply (chosen on all
300 pages); they are kept here, not in pipeline/, so that their measurement can be repeated.
"""

from __future__ import annotations

import re
import sys

from benchmarks.extraction_scoring import FOLDS, MIN_WINS, cv_summary, fold_of, page_counts, prf, wins
from benchmarks.harness import timed
from pipeline.extract.config import ExtractConfig
from pipeline.extract.link_density import element_link_density, is_link_line
from pipeline.extract.main_text import main_text
from pipeline.extract.normalize import MAX_PROMPT_WORDS, normalize_text

TRAFILATURA_FIELDS = ("fast", "favor_precision", "favor_recall", "include_comments", "include_tables", "deduplicate")
END_OF_SENTENCE = re.compile(r"[.!?…:;\"”»)]\W*$")


class Passes:
    """trafilatura's raw output per setting (each computed once) and each page's link densities."""

    def __init__(self, pages: dict):
        from trafilatura.utils import load_html

        self.pages, self.load_html = pages, load_html
        self.raw: dict[tuple, dict[str, str]] = {}
        self.cpu_seconds: dict[str, float] = {}
        with timed() as clock:
            self.densities = {url: element_link_density(load_html(html)) for url, (html, _) in pages.items()}
        self.cpu_seconds["link_density"] = round(clock.cpu_s, 2)

    def text(self, cfg: ExtractConfig) -> dict[str, str]:
        key = tuple(getattr(cfg, f) for f in TRAFILATURA_FIELDS)
        if key not in self.raw:
            with timed() as clock:
                self.raw[key] = {url: main_text(self.load_html(html), cfg) for url, (html, _) in self.pages.items()}
            default = ExtractConfig()
            changed = [f"{f}={v}" for f, v in zip(TRAFILATURA_FIELDS, key) if v != getattr(default, f)]
            self.cpu_seconds[",".join(changed) or "default"] = round(clock.cpu_s, 2)
        return self.raw[key]

    def finish(self, raw: dict[str, str], cfg: ExtractConfig) -> dict[str, str]:
        """What extract_main_text + normalize_text make of trafilatura's text (the same steps)."""
        out = {}
        for url, text in raw.items():
            if not text.strip():
                out[url] = ""
                continue
            if cfg.drop_link_lines:  # as link_density.drop_link_lines, with every element's density at hand
                text = "\n".join(
                    line
                    for line in text.split("\n")
                    if not is_link_line(line, self.densities[url], cfg.link_density, cfg.link_line_max_words)
                )
            out[url] = normalize_text(text, cfg)
        return out

    def outputs(self, **overrides) -> dict[str, str]:
        cfg = ExtractConfig(**overrides)
        return self.finish(self.text(cfg), cfg)


# --------------------------------------------------------------------------- nested selection


def nested(family: dict, truth: list[dict]) -> tuple[dict[str, str], list]:
    """Per fold, the parameters best on the other folds, scored on this one (ties: earliest in `family`)."""
    counts = {p: {row["url"]: page_counts(out.get(row["url"], ""), row) for row in truth} for p, out in family.items()}

    def train_f1(p, k: int) -> float:
        total = [0, 0, 0, 0]
        for row in truth:
            if fold_of(row["url"]) != k:
                for i, n in enumerate(counts[p][row["url"]]):
                    total[i] += n
        return prf(*total)["f1"]

    held, chosen = {}, []
    for k in range(FOLDS):
        best = max(family, key=lambda p: train_f1(p, k))
        chosen.append(best)
        held.update({url: text for url, text in family[best].items() if fold_of(url) == k})
    return held, chosen


def drop_lines(outputs: dict[str, str], drop) -> dict[str, str]:
    """Apply a line rule `drop(url, line, previous_lines, next_lines) -> bool` to every page."""
    result = {}
    for url, text in outputs.items():
        lines = text.split("\n")
        result[url] = "\n".join(
            line for i, line in enumerate(lines) if not (line and drop(url, line, lines[:i], lines[i + 1 :]))
        )
    return result


# --------------------------------------------------------------------------- candidates


def short(line: str, words: int) -> bool:
    return len(line.split()) <= words and not END_OF_SENTENCE.search(line)


def candidates(passes: Passes, default: dict[str, str]):
    """(name, baseline outputs, changed outputs or a {params: outputs} family to tune)."""
    no_links = passes.outputs(drop_link_lines=False)
    yield (
        "link-line rule (vs none)",
        no_links,
        {
            (d, w): passes.outputs(link_density=d, link_line_max_words=w)
            for d in (0.5, 0.3, 0.4, 0.6, 0.7, 0.9, 1.0)
            for w in (20, 10, 40, 10_000)
        },
    )
    yield "call-to-action lines (vs none)", passes.outputs(remove_boilerplate_lines=False), default
    for field, label in (
        ("favor_precision", "trafilatura favor_precision"),
        ("favor_recall", "trafilatura favor_recall"),
        ("fast", "fast: no readability/jusText fallback"),
        ("include_comments", "include_comments"),
        ("deduplicate", "deduplicate"),
    ):
        yield label, default, passes.outputs(**{field: True})
    yield "no tables", default, passes.outputs(include_tables=False)

    # precision and recall passes combined per page by agreement
    cfg = ExtractConfig()
    bal, precise, recall = default, passes.outputs(favor_precision=True), passes.outputs(favor_recall=True)

    def agreement(a: str, b: str) -> float:
        """Share of b's characters on lines that a also has."""
        lines = set(a.split("\n"))
        return sum(len(line) for line in b.split("\n") if line in lines) / max(len(b), 1)

    yield (
        "precision pass where it keeps >= t of the balanced text, else balanced",
        default,
        {
            t: {u: precise[u] if agreement(precise[u], bal[u]) >= t else bal[u] for u in bal}
            for t in (1.01, 0.95, 0.9, 0.8, 0.7, 0.5)
        },
    )
    yield (
        "lines both precision and recall passes have",
        default,
        {u: "\n".join(line for line in recall[u].split("\n") if line in set(precise[u].split("\n"))) for u in bal},
    )
    yield (
        "recall-pass lines that the precision or balanced pass also has",
        default,
        {
            u: "\n".join(
                line for line in recall[u].split("\n") if line in set(precise[u].split("\n")) | set(bal[u].split("\n"))
            )
            for u in bal
        },
    )
    fast = passes.outputs(fast=True)
    fast_raw = passes.text(ExtractConfig(fast=True))
    yield (
        "fallbacks only when the fast pass is shorter than n chars",
        default,
        {n: {u: fast[u] if len(fast_raw[u]) >= n else bal[u] for u in bal} for n in (10**9, 4000, 2000, 1000, 500)},
    )

    # post-rules on the extracted text
    for name, pattern in PHRASE_FAMILIES.items():
        rx = re.compile(r"^\W*(?:" + pattern + r")\W*$", re.I | re.X)
        yield (
            f"phrase list: {name}",
            default,
            drop_lines(default, lambda u, line, p, n, rx=rx: len(line.split()) <= 12 and bool(rx.match(line))),
        )
    yield (
        "phrase list: 2+ social network names",
        default,
        drop_lines(
            default,
            lambda u, line, p, n: len(line.split()) <= MAX_PROMPT_WORDS and len(set(SOCIAL.findall(line.lower()))) >= 2,
        ),
    )

    def repeated(u, line, prev, nxt, w):
        return len(line.split()) <= w and line in prev

    yield (
        "repeated short lines (keep the first)",
        default,
        {w: drop_lines(default, lambda u, line, p, n, w=w: repeated(u, line, p, n, w)) for w in (3, 6, 10, 10_000)},
    )

    def in_run(line, prev, nxt, k, w):
        run = 1
        for side in (reversed(prev), nxt):
            for other in side:
                if not (other and short(other, w)):
                    break
                run += 1
        return short(line, w) and run >= k

    yield (
        "navigation runs: k+ short lines in a row",
        default,
        {
            (k, w): drop_lines(default, lambda u, line, p, n, k=k, w=w: in_run(line, p, n, k, w))
            for k in (6, 4, 3)
            for w in (2, 3, 5)
        },
    )

    link_lines = {
        u: {
            line
            for line in no_links[u].split("\n")
            if is_link_line(line, passes.densities[u], cfg.link_density, cfg.link_line_max_words)
        }
        for u in bal
    }
    yield (
        "heading of a dropped link block",
        default,
        {w: {u: _drop_headings(no_links[u], link_lines[u], w, default[u]) for u in bal} for w in (2, 4, 6, 8)},
    )
    yield (
        "short lines at the end of the text",
        default,
        {(w, n): {u: _drop_tail(default[u], w, n) for u in bal} for w in (2, 4, 6) for n in (1, 3, 100)},
    )


def _drop_headings(text_with_links: str, link_lines: set[str], words: int, default: str) -> str:
    """Default output minus the short lines that, before the link-line rule, came right before a link line."""
    lines = text_with_links.split("\n")
    headings = set()
    for i, line in enumerate(lines[:-1]):
        nxt = next((x for x in lines[i + 1 :] if x.strip()), None)
        if line and line not in link_lines and short(line, words) and nxt in link_lines:
            headings.add(line)
    return "\n".join(line for line in default.split("\n") if line not in headings)


def _drop_tail(text: str, words: int, most: int) -> str:
    lines = text.split("\n")
    for _ in range(most):
        if lines and lines[-1] and short(lines[-1], words):
            lines.pop()
        else:
            break
    return "\n".join(lines)


def run_study(pages: dict, truth: list[dict], default_outputs: dict[str, str]) -> dict:
    passes = Passes(pages)
    default = passes.outputs()
    if default != default_outputs:  # the study must measure what the extract stage does
        raise AssertionError("the study's decomposition of extraction differs from extract_main_text")
    rows = []
    for name, base, changed in candidates(passes, default):
        chosen = None
        if isinstance(changed, dict) and changed and not isinstance(next(iter(changed.values())), str):
            changed, chosen = nested(changed, truth)
        won, lost = wins(base, changed, truth)
        before, after = cv_summary(base, truth)["cv"], cv_summary(changed, truth)["cv"]
        row = {
            "candidate": name,
            "f1_mean": after["f1_mean"],
            "delta_f1": round(after["f1_mean"] - before["f1_mean"], 4),
            "precision_mean": after["precision_mean"],
            "recall_mean": after["recall_mean"],
            "wins": won,
            "losses": lost,
            "kept": won >= MIN_WINS,
        }
        if chosen is not None:
            row["chosen_per_fold"] = [list(c) if isinstance(c, tuple) else c for c in chosen]
        rows.append(row)
        print(row, file=sys.stderr)
    return {"candidates": rows, "cpu_seconds": passes.cpu_seconds}


# --------------------------------------------------------------------------- removed phrase lists

SOCIAL = re.compile(r"\b(?:facebook|twitter|instagram|telegram|whatsapp|linkedin|youtube|tiktok|pinterest|xing)\b")
PHRASE_FAMILIES = {
    "navigation labels": r"""
      (?:share|teilen|partager|compartir|condividi|delen|udostępnij)(?:\s+(?:this|on|via|auf|sur|en|su|op|
          w))?(?:\s+\w+)?
    | (?:tweet|pin\s+it|whatsapp|e-?mail|print|drucken|imprimer|imprimir|stampa)
    | (?:read|continue\s+reading|weiterlesen|mehr\s+lesen|lire\s+la\s+suite|leer\s+más|leggi\s+(?:tutto|di\s+più)|
        lees\s+meer|czytaj\s+(?:więcej|dalej))(?:\s+more)?\s*(?:»|›|>|→|\.\.\.|…)?
    | (?:skip\s+to\s+(?:main\s+)?content|zum\s+inhalt\s+springen|aller\s+au\s+contenu|ir\s+al\s+contenido|
        vai\s+al\s+contenuto)
    | (?:back\s+to\s+top|nach\s+oben|zurück(?:\s+zur\s+übersicht)?|retour(?:\s+en\s+haut)?|volver\s+arriba|torna\s+su)
    | (?:previous|next|vorherige[rs]?|nächste[rs]?|précédent|suivant|anterior|siguiente|precedente|
        successivo)(?:\s+(?:post|article|artikel|beitrag|page|seite|entrada|articolo))?\s*(?:»|›|>|→|«|‹|<|←)?
    | (?:all\s+rights\s+reserved|alle\s+rechte\s+vorbehalten|tous\s+droits\s+réservés|
        todos\s+los\s+derechos\s+reservados|tutti\s+i\s+diritti\s+riservati).*
    | (?:©|\(c\)|copyright)\s*(?:\d{4}|[\w&.,-]+\s).*
    | (?:log\s*in|sign\s*in|anmelden|einloggen|se\s+connecter|iniciar\s+sesión|accedi|register|registrieren)
    | (?:posted\s+in|filed\s+under|tags?|schlagw(?:ö|o)rte?r?|kategorien?|categories|catégories|etiquetas|temas|themen|
        topics)\s*:.*
    | (?:(?:top|weitere|more|related|mehr|otros|autres)[- ])?(?:themen|temas|topics|thèmes|tags)(?:\s+(?:bei|zum|at|on|
        de|du|zu)\s+.*)?
    | (?:related\s+(?:posts|articles|content)|contenido\s+relacionado|ähnliche\s+(?:beiträge|artikel)|
        weitere\s+(?:artikel|beiträge)(?:\s+zum\s+thema)?|articles\s+similaires|artículos\s+relacionados|
        articoli\s+correlati|das\s+könnte\s+sie\s+auch\s+interessieren|you\s+may\s+also\s+like)\s*:?
    | (?:leave\s+a\s+(?:comment|reply)|kommentar\s+(?:schreiben|hinterlassen)|laisser\s+un\s+commentaire|
        deja\s+un\s+comentario|lascia\s+un\s+commento)\b.*
    | (?:advertisement|anzeige|werbung|publicité|publicidad|pubblicità|sponsored)""",
    "teasers": r"""
      (?:(?:see|read)\s+also|also\s+read|read\s+more|lesen\s+sie\s+(?:auch|mehr)|auch\s+interessant|schon\s+gelesen|
          mehr\s+zum\s+thema|(?:à\s+)?lire\s+aussi|lea\s+(?:también|más|además)|lea|le\s+puede\s+interesar|
          te\s+puede\s+interesar|ver\s+también|leia\s+também|leggi\s+anche|zobacz\s+(?:też|także))\s*[:?!].*
    | (?:>>|»)\s.*\s(?:<<|«)""",
    "captions and credits": r"""
      \(?(?:photo|foto|bild|beitragsbild|titelbild|image|credit|crédito|crédit|fuente|quelle|source|
          fotos?)\s*(?:illustrative|credit)?\s*:.*""",
    "date stamps": r"""
      (?:aktualisiert|veröffentlicht|updated|published|last\s+modified|publié|actualizado|publicado)(?:\s+(?:am|on|le|
          el))?\s*:?\s*[\d./:, -]+(?:\w+\s+\d{4})?[\d./:, -]*
    | (?:veröffentlichung|datum|date)\s*:\s*[\w./:, -]+
    | \d{1,2}:\d{2}(?:\s*[ap]\.?m\.?)?(?:\s*\W*\s*\w+\s*\W*)?""",
}
