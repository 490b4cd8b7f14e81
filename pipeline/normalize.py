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

# C0/C1 controls except tab and newline, plus zero-width and bidi marks that carry no text.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff\u202a-\u202e\u2066-\u2069]")
_SPACE_RE = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_LINEBREAK_RE = re.compile(r"\r\n?|[\u2028\u2029\x85\x0b\x0c]")
_BLANKS_RE = re.compile(r"\n{3,}")
_MOJIBAKE_HINT_RE = re.compile("[\u00c2\u00c3\u00c5\u00e2\u00ef\u00d0\u00d1][\u0080-\u00bf\u2018-\u203a\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u02c6\u02dc\u20ac\u2122]")
MAX_BOILERPLATE_WORDS = 12

# Whole-line furniture, many languages (en, de, fr, es, it, nl, pl, pt): anchored, case-insensitive.
_BOILERPLATE_RE = re.compile(
    r"""^\W*(?:
      (?:share|teilen|partager|compartir|condividi|delen|udostępnij)(?:\s+(?:this|on|via|auf|sur|en|su|op|w))?(?:\s+\w+)?
    | (?:follow\s+us|folgen\s+sie\s+uns|suivez[- ]nous|síguenos|seguici)\b.*
    | (?:tweet|pin\s+it|whatsapp|e-?mail|print|drucken|imprimer|imprimir|stampa)
    | (?:read|continue\s+reading|weiterlesen|mehr\s+lesen|lire\s+la\s+suite|leer\s+más|leggi\s+(?:tutto|di\s+più)|lees\s+meer|czytaj\s+(?:więcej|dalej))(?:\s+more)?\s*(?:»|›|>|→|\.\.\.|…)?
    | (?:skip\s+to\s+(?:main\s+)?content|zum\s+inhalt\s+springen|aller\s+au\s+contenu|ir\s+al\s+contenido|vai\s+al\s+contenuto)
    | (?:back\s+to\s+top|nach\s+oben|zurück(?:\s+zur\s+übersicht)?|retour(?:\s+en\s+haut)?|volver\s+arriba|torna\s+su)
    | (?:previous|next|vorherige[rs]?|nächste[rs]?|précédent|suivant|anterior|siguiente|precedente|successivo)(?:\s+(?:post|article|artikel|beitrag|page|seite|entrada|articolo))?\s*(?:»|›|>|→|«|‹|<|←)?
    | (?:all\s+rights\s+reserved|alle\s+rechte\s+vorbehalten|tous\s+droits\s+réservés|todos\s+los\s+derechos\s+reservados|tutti\s+i\s+diritti\s+riservati).*
    | (?:©|\(c\)|copyright)\s*(?:\d{4}|[\w&.,-]+\s).*
    | .*\b(?:we\s+use\s+cookies|uses\s+cookies|verwendet\s+cookies|nutzt\s+cookies|utilise\s+des\s+cookies|utiliza\s+cookies|usa\s+(?:i\s+)?cookie|accept(?:ez)?\s+(?:all\s+)?cookies|cookie[- ](?:settings|policy|einstellungen|richtlinie))\b.*
    | (?:sign\s+up\s+for\s+(?:our|the)\s+newsletter|subscribe(?:\s+to\s+(?:our|the)\s+newsletter)?|newsletter\s+abonnieren|abonnez-vous|suscríbete|iscriviti)\b.*
    | (?:log\s*in|sign\s*in|anmelden|einloggen|se\s+connecter|iniciar\s+sesión|accedi|register|registrieren)
    | (?:posted\s+in|filed\s+under|tags?|schlagwörter|kategorien?|categories|catégories|etiquetas)\s*:.*
    | (?:related\s+(?:posts|articles)|ähnliche\s+(?:beiträge|artikel)|articles\s+similaires|artículos\s+relacionados|articoli\s+correlati|das\s+könnte\s+sie\s+auch\s+interessieren|you\s+may\s+also\s+like)\s*:?
    | (?:leave\s+a\s+(?:comment|reply)|kommentar\s+(?:schreiben|hinterlassen)|laisser\s+un\s+commentaire|deja\s+un\s+comentario|lascia\s+un\s+commento)\b.*
    | (?:advertisement|anzeige|werbung|publicité|publicidad|pubblicità|sponsored)
    )\W*$""",
    re.I | re.X,
)


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
    if len(line) > 160 or len(line.split()) > MAX_BOILERPLATE_WORDS:
        return False
    return bool(_BOILERPLATE_RE.match(line))


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
