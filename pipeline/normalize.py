"""Extracted text -> clean text: mojibake repair, NFC, control characters, whitespace, boilerplate lines.

Never shortens content lines: only whitespace, invisible characters and whole lines that are
recognisably page furniture (share buttons, cookie banners, copyright notices, "read more"
links) are removed. The boilerplate patterns follow the line rules of C4 (Raffel et al. 2020,
section 2.2: lines about cookies, terms of use, javascript) and the navigation phrases that
jusText's stoplist-free heuristics and trafilatura's own `BOILERPLATE` xpaths target,
kept short (≤ 12 words) so a real sentence that mentions "cookies" survives.
"""
from __future__ import annotations

import re
import unicodedata

from pipeline.config import ExtractConfig

# C0/C1 controls except whitespace ones (tab, newline, separators 1C-1F become spaces), plus zero-width and bidi marks that carry no text.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u200b-\u200d\u2060\ufeff\u202a-\u202e\u2066-\u2069]")
_SPACE_RE = re.compile(r"[ \t\x1c-\x1f\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_LINEBREAK_RE = re.compile(r"\r\n?|[\u2028\u2029\x85\x0b\x0c]")
_BLANKS_RE = re.compile(r"\n{3,}")
_MOJIBAKE_HINT_RE = re.compile("[\u00c2\u00c3\u00c5\u00e2\u00ef\u00d0\u00d1][\u0080-\u00bf\u2018-\u203a\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u02c6\u02dc\u20ac\u2122]")
MAX_BOILERPLATE_WORDS = 12
MAX_PROMPT_WORDS = 30  # calls to subscribe / follow run longer than navigation labels

# Whole-line furniture, many languages (en, de, fr, es, it, nl, pl, pt): anchored, case-insensitive.
_BOILERPLATE_RE = re.compile(
    r"""^\W*(?:
      (?:share|teilen|partager|compartir|condividi|delen|udostępnij)(?:\s+(?:this|on|via|auf|sur|en|su|op|w))?(?:\s+\w+)?
    | (?:tweet|pin\s+it|whatsapp|e-?mail|print|drucken|imprimer|imprimir|stampa)
    | (?:read|continue\s+reading|weiterlesen|mehr\s+lesen|lire\s+la\s+suite|leer\s+más|leggi\s+(?:tutto|di\s+più)|lees\s+meer|czytaj\s+(?:więcej|dalej))(?:\s+more)?\s*(?:»|›|>|→|\.\.\.|…)?
    | (?:skip\s+to\s+(?:main\s+)?content|zum\s+inhalt\s+springen|aller\s+au\s+contenu|ir\s+al\s+contenido|vai\s+al\s+contenuto)
    | (?:back\s+to\s+top|nach\s+oben|zurück(?:\s+zur\s+übersicht)?|retour(?:\s+en\s+haut)?|volver\s+arriba|torna\s+su)
    | (?:previous|next|vorherige[rs]?|nächste[rs]?|précédent|suivant|anterior|siguiente|precedente|successivo)(?:\s+(?:post|article|artikel|beitrag|page|seite|entrada|articolo))?\s*(?:»|›|>|→|«|‹|<|←)?
    | (?:all\s+rights\s+reserved|alle\s+rechte\s+vorbehalten|tous\s+droits\s+réservés|todos\s+los\s+derechos\s+reservados|tutti\s+i\s+diritti\s+riservati).*
    | (?:©|\(c\)|copyright)\s*(?:\d{4}|[\w&.,-]+\s).*
    | (?:log\s*in|sign\s*in|anmelden|einloggen|se\s+connecter|iniciar\s+sesión|accedi|register|registrieren)
    | (?:posted\s+in|filed\s+under|tags?|schlagw(?:ö|o)rte?r?|kategorien?|categories|catégories|etiquetas|temas|themen|topics)\s*:.*
    | (?:(?:top|weitere|more|related|mehr|otros|autres)[- ])?(?:themen|temas|topics|thèmes|tags)(?:\s+(?:bei|zum|at|on|de|du|zu)\s+.*)?
    | (?:related\s+(?:posts|articles|content)|contenido\s+relacionado|ähnliche\s+(?:beiträge|artikel)|weitere\s+(?:artikel|beiträge)(?:\s+zum\s+thema)?|articles\s+similaires|artículos\s+relacionados|articoli\s+correlati|das\s+könnte\s+sie\s+auch\s+interessieren|you\s+may\s+also\s+like)\s*:?
    | (?:leave\s+a\s+(?:comment|reply)|kommentar\s+(?:schreiben|hinterlassen)|laisser\s+un\s+commentaire|deja\s+un\s+comentario|lascia\s+un\s+commento)\b.*
    | (?:advertisement|anzeige|werbung|publicité|publicidad|pubblicità|sponsored)
    # teasers for other articles: "Read also: <headline>", "Lea también: ...", ">> headline <<"
    | (?:(?:see|read)\s+also|also\s+read|read\s+more|lesen\s+sie\s+(?:auch|mehr)|auch\s+interessant|schon\s+gelesen|mehr\s+zum\s+thema|(?:à\s+)?lire\s+aussi|lea\s+(?:también|más|además)|lea|le\s+puede\s+interesar|te\s+puede\s+interesar|ver\s+también|leia\s+também|leggi\s+anche|zobacz\s+(?:też|także))\s*[:?!].*
    | (?:>>|»)\s.*\s(?:<<|«)
    # captions, credits and source lines
    | \(?(?:photo|foto|bild|beitragsbild|titelbild|image|credit|crédito|crédit|fuente|quelle|source|fotos?)\s*(?:illustrative|credit)?\s*:.*
    # date stamps
    | (?:aktualisiert|veröffentlicht|updated|published|last\s+modified|publié|actualizado|publicado)(?:\s+(?:am|on|le|el))?\s*:?\s*[\d./:, -]+(?:\w+\s+\d{4})?[\d./:, -]*
    | (?:veröffentlichung|datum|date)\s*:\s*[\w./:, -]+
    | \d{1,2}:\d{2}(?:\s*[ap]\.?m\.?)?(?:\s*\W*\s*\w+\s*\W*)?
    )\W*$""",
    re.I | re.X,
)

# Calls to action that run longer: subscribe / newsletter / follow us / affiliate notices / cookies.
_PROMPT_RE = re.compile(
    r"""\b(?:newsletter|subscribe|subscriber|subscription|abonnieren|abonnez|suscríbete|suscribirse|iscriviti|assine
    |affiliate|partnerlink|werbelink
    |follow\s+(?:us|the\s+\w+)\s+on|folgen\s+sie\s+uns|suivez[- ]nous|s[ií]guenos|seguici
    |we\s+use\s+cookies|uses\s+cookies|verwendet\s+cookies|nutzt\s+cookies|utilise\s+des\s+cookies|utiliza\s+cookies|usa\s+(?:i\s+)?cookie|accept(?:ez)?\s+(?:all\s+)?cookies|cookie[- ](?:settings|policy|einstellungen|richtlinie))""",
    re.I | re.X,
)
_SOCIAL_RE = re.compile(r"\b(?:facebook|twitter|instagram|telegram|whatsapp|linkedin|youtube|tiktok|pinterest|xing)\b", re.I)


def fix_encoding(text: str) -> str:
    """Repair mojibake (UTF-8 read as Latin-1/cp1252) with ftfy, only where it is likely.

    ftfy's full pass costs about as much as extraction; the hint regex finds the byte pairs
    that UTF-8-as-cp1252 mojibake produces, and clean text skips ftfy entirely.
    """
    if not _MOJIBAKE_HINT_RE.search(text):
        return text
    import ftfy

    return ftfy.fix_text(text, normalization="NFC")


def is_boilerplate_line(line: str) -> bool:
    """True for a short line that is page furniture rather than content."""
    words = len(line.split())
    if words > MAX_PROMPT_WORDS:
        return False
    if _PROMPT_RE.search(line) or len({m.lower() for m in _SOCIAL_RE.findall(line)}) >= 2:
        return True
    return words <= MAX_BOILERPLATE_WORDS and len(line) <= 200 and bool(_BOILERPLATE_RE.match(line))


def normalize_text(text: str, cfg: ExtractConfig | None = None) -> str:
    """Clean extracted text; see the module docstring for what is and is not changed."""
    cfg = cfg or ExtractConfig()
    if cfg.fix_mojibake:
        text = fix_encoding(text)
    text = unicodedata.normalize("NFC", text)
    text = _LINEBREAK_RE.sub("\n", text)
    text = _CONTROL_RE.sub("", text)
    lines = []
    for line in text.split("\n"):
        line = _SPACE_RE.sub(" ", line).strip()
        if line and cfg.remove_boilerplate_lines and is_boilerplate_line(line):
            continue
        lines.append(line)
    return _BLANKS_RE.sub("\n\n", "\n".join(lines)).strip()
