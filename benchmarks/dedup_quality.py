"""Near-dedup quality against brute-force Jaccard: recall and precision at the configured threshold.

Real documents: main texts of the sample WARCs' pages (trafilatura), cut into ~250-word chunks
so a few hundred pages give a few thousand distinct documents, plus the Leipzig test sentences
grouped 25 per document. Perturbed copies of a random subset, at several strengths: word edits
(replace/delete/insert), inserted boilerplate lines (banner + footer), reordered paragraphs.

Truth: the exact Jaccard of the word 5-gram shingle sets of ALL pairs (sparse matrix product);
a pair is a duplicate when J >= 0.8. Two views of what the stage decides:
  - edges: pairs the LSH links directly (share a band, and pass verification if it is on);
  - clusters: pairs that end in one connected component (stricter: chains add pairs).
Side by side: FineWeb's plain banding (dedup.verify=none), the signature estimate and the exact
shingle-set check (the default); the ratio is edge precision(configured) / precision(FineWeb).

usage: python -m benchmarks.dedup_quality [WARC ...] [--sentences TSV] [--copies-of 0.6] [--chunk-words 250]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from benchmarks.harness import SENTENCES, add_warcs_argument, print_result, timed
from crawl2gpt.config import RunConfig
from pipeline.dedup.lsh import BandIndex, bucket_pairs, shingle_jaccard, signature_agreeing
from pipeline.dedup.minhash import lean_minhashes, signature_bytes, signature_matrix
from pipeline.dedup.shingles import shingle_hashes, simplify_text
from pipeline.dedup.union_find import UnionFind

BOILERPLATE = [
    "Subscribe to our newsletter and never miss a story.",
    "This website uses cookies to improve your experience.",
    "Share this article on Facebook, Twitter and WhatsApp.",
    "All rights reserved. Reproduction without permission is prohibited.",
    "Related articles you might also like",
    "Click here to read more from our partners.",
    "Advertisement - continue reading below",
    "Sign in or create an account to leave a comment.",
    "Follow us on Instagram for daily updates.",
    "Terms of use | Privacy policy | Contact | Imprint",
]
THRESHOLD = 0.8


def page_texts(warcs: list[Path]) -> list[str]:
    import trafilatura
    from warcio.archiveiterator import ArchiveIterator

    texts: dict[str, None] = {}
    for warc in warcs:
        with open(warc, "rb") as fh:
            for record in ArchiveIterator(fh):
                if record.rec_type != "response" or "html" not in (
                    record.http_headers.get_header("Content-Type") or ""
                ):
                    continue
                text = trafilatura.extract(record.content_stream().read().decode("utf-8", "replace"))
                if text:
                    texts[text] = None
    return list(texts)


def chunk_documents(texts: list[str], words: int = 250) -> list[str]:
    """Cut pages into paragraph-aligned chunks of ~`words` words (each a distinct real document)."""
    docs = []
    for text in texts:
        current: list[str] = []
        for para in text.split("\n"):
            current.append(para)
            if sum(len(p.split()) for p in current) >= words:
                docs.append("\n".join(current))
                current = []
        if sum(len(p.split()) for p in current) >= 40:
            docs.append("\n".join(current))
    return docs


def sentence_documents(tsv: Path, per_doc: int = 25) -> list[str]:
    by_lang: dict[str, list[str]] = {}
    for line in tsv.read_text(encoding="utf-8").splitlines():
        lang, _, sentence = line.partition("\t")
        by_lang.setdefault(lang, []).append(sentence)
    return ["\n".join(s[i : i + per_doc]) for s in by_lang.values() for i in range(0, len(s) - per_doc + 1, per_doc)]


def edit_words(text: str, rate: float, rng: random.Random) -> str:
    out = []
    for word in text.split(" "):
        roll = rng.random()
        if roll < rate / 3:
            continue  # delete
        if roll < 2 * rate / 3:
            out.append(rng.choice(["lorem", "quux", "data", "news", "value"]))  # replace
            continue
        out.append(word)
        if roll < rate:
            out.append(rng.choice(["really", "also", "very", "indeed"]))  # insert
    return " ".join(out)


def add_boilerplate(text: str, lines: int, rng: random.Random) -> str:
    head = rng.sample(BOILERPLATE, lines // 2)
    tail = rng.sample(BOILERPLATE, lines - lines // 2)
    return "\n".join(head + [text] + tail)


def reorder_paragraphs(text: str, swaps: int, rng: random.Random) -> str:
    paras = text.split("\n")
    for _ in range(swaps):
        i, j = rng.randrange(len(paras)), rng.randrange(len(paras))
        paras[i], paras[j] = paras[j], paras[i]
    return "\n".join(paras)


PERTURBATIONS = [
    *[(f"edit{r}", lambda t, g, r=r: edit_words(t, r, g)) for r in (0.005, 0.01, 0.02, 0.04, 0.08)],
    *[(f"boiler{n}", lambda t, g, n=n: add_boilerplate(t, n, g)) for n in (2, 4, 8)],
    *[(f"reorder{s}", lambda t, g, s=s: reorder_paragraphs(t, s, g)) for s in (1, 3, 10)],
    ("edit0.01+boiler2", lambda t, g: add_boilerplate(edit_words(t, 0.01, g), 2, g)),
]


def build_corpus(originals: list[str], copies_of: float, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    docs, kinds = list(originals), ["original"] * len(originals)
    for text in originals:
        if rng.random() < copies_of:
            name, perturb = rng.choice(PERTURBATIONS)
            docs.append(perturb(text, rng))
            kinds.append(name)
    order = list(range(len(docs)))
    rng.shuffle(order)  # copies may come before their original, as in a crawl
    return [docs[i] for i in order], [kinds[i] for i in order]


def true_pairs(shingles: list[np.ndarray], threshold: float) -> tuple[set[tuple[int, int]], dict]:
    """All pairs with Jaccard >= threshold, exactly: |A∩B| from a sparse product, |A∪B| from sizes."""
    vocab, inverse = np.unique(np.concatenate(shingles), return_inverse=True)
    rows = np.repeat(np.arange(len(shingles)), [len(s) for s in shingles])
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, inverse)), shape=(len(shingles), len(vocab)))
    inter = sp.triu(matrix @ matrix.T, k=1).tocoo()  # (n, n) shared-shingle counts, upper triangle
    sizes = np.array([len(s) for s in shingles])
    jac = inter.data / (sizes[inter.row] + sizes[inter.col] - inter.data)
    keep = jac >= threshold
    hist = np.histogram(jac, bins=[0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0001])[0]
    return set(zip(inter.row[keep].tolist(), inter.col[keep].tolist())), {
        "jaccard_histogram_0.5_to_1": hist.tolist(),
        "pairs_jaccard": {(int(a), int(b)): float(j) for a, b, j in zip(inter.row, inter.col, jac) if j >= 0.5},
    }


def evaluate(signatures: np.ndarray, shingles: list[np.ndarray], truth: set, cfg: RunConfig, verify: str) -> dict:
    """Edges and clusters as the stage makes them under one dedup.verify mode (same lsh.py functions)."""
    d = cfg.dedup.model_copy(update={"verify": verify})
    index = BandIndex(d)
    index.insert(list(range(len(signatures))), [row.tobytes() for row in signatures])
    edges, clusters = set(), UnionFind(len(signatures))
    for members in index.candidate_buckets():
        members = sorted(members)
        if verify == "signature":
            pairs = signature_agreeing(members, signatures, d.verify_threshold)
        elif verify == "exact":
            pairs = (
                p
                for p in bucket_pairs(members)
                if shingle_jaccard(shingles[p[0]], shingles[p[1]]) >= d.verify_threshold
            )
        else:  # every pair of the bucket is a claimed duplicate (the stage's star is only how union joins them)
            pairs = bucket_pairs(members)
        for a, b in pairs:
            edges.add((int(a), int(b)))
            clusters.union(a, b)
    roots = clusters.roots()
    cluster_pairs = set()
    for root in np.unique(roots[roots != np.arange(len(roots))]):
        members = np.nonzero(roots == root)[0].tolist()
        cluster_pairs.update((a, b) for i, a in enumerate(members) for b in members[i + 1 :])

    def score(predicted: set) -> dict:
        hit = len(predicted & truth)
        return {
            "predicted": len(predicted),
            "recall": round(hit / max(len(truth), 1), 4),
            "precision": round(hit / max(len(predicted), 1), 4),
        }

    return {"verify": verify, "edges": score(edges), "clusters": score(cluster_pairs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_warcs_argument(parser)
    parser.add_argument("--sentences", type=Path, default=SENTENCES)
    parser.add_argument("--copies-of", type=float, default=0.6, help="share of originals that get a perturbed copy")
    parser.add_argument("--chunk-words", type=int, default=150, help="words per real-text document cut from a page")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with timed() as clock:
        originals = chunk_documents(page_texts(args.warcs), args.chunk_words)
        n_pages_chunks = len(originals)
        if args.sentences.is_file():
            originals += sentence_documents(args.sentences)
        docs, kinds = build_corpus(originals, args.copies_of, args.seed)
        cfg = RunConfig()
        shingles = [shingle_hashes(simplify_text(t), cfg.dedup.ngram) for t in docs]
        signatures = signature_matrix(
            [signature_bytes(m) for m in lean_minhashes(shingles, cfg.dedup.num_perm, cfg.dedup.seed)],
            cfg.dedup.num_perm,
        )
        truth, info = true_pairs(shingles, THRESHOLD)
        modes = {mode: evaluate(signatures, shingles, truth, cfg, mode) for mode in ("none", "signature", "exact")}
    configured, fineweb = modes[cfg.dedup.verify], modes["none"]
    copies = {}
    for kind in kinds:
        copies[kind] = copies.get(kind, 0) + 1
    result = {
        "benchmark": "dedup_quality",
        "documents": len(docs),
        "real_chunk_docs": n_pages_chunks,
        "sentence_docs": len(originals) - n_pages_chunks,
        "copies_by_kind": copies,
        "true_pairs_j_ge_0.8": len(truth),
        "pairs_by_jaccard_0.5_0.6_0.7_0.75_0.8_0.85_0.9_0.95_1": info["jaccard_histogram_0.5_to_1"],
        "bands": cfg.dedup.bands,
        "rows": cfg.dedup.rows,
        "verify_threshold": cfg.dedup.verify_threshold,
        "configured_verify": cfg.dedup.verify,
        "by_verify_mode": modes,
        "edge_precision_ratio_configured_vs_fineweb_none": round(
            configured["edges"]["precision"] / max(fineweb["edges"]["precision"], 1e-9), 3
        ),
        "seconds": round(clock.wall_s, 1),
    }
    print_result(result)


if __name__ == "__main__":
    main()
