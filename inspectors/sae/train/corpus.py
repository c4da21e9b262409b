"""Real English prose that the training script can obtain offline: Wikipedia articles from a PyPI wheel.

The `gensim` wheel on PyPI ships, as test data, an extract of the English Wikipedia: 106 full articles
(Anarchism, Achilles, Albert Einstein, Apollo 11, Aristotle, Algae, Alabama, ...: history, science,
people, places, politics, the arts), about 770k Gemma tokens of text once the wiki markup is
stripped. Only the wheel file is downloaded (`pip download`, no install); the text is read from
inside the zip and the markup stripped with mwparserfromhell. Licence of the text: Wikipedia's,
CC BY-SA 3.0 (attribution: the Wikipedia contributors of each article).
"""

from __future__ import annotations

import bz2
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path

GENSIM_VERSION = "4.4.0"
WIKI_MEMBER = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
LICENCE = "CC BY-SA 3.0 (text of English Wikipedia articles, by their Wikipedia contributors)"
SOURCE = f"English Wikipedia extract shipped in the PyPI wheel gensim=={GENSIM_VERSION} ({WIKI_MEMBER})"
# Every HELD_OUT_EVERY-th article (by position in the dump) is held out from training for evaluation.
HELD_OUT_EVERY = 8

_DROP_LINE = re.compile(r"^\s*(thumb\||left\||right\||frame\||upright|File:|Image:|Category:|\{\||\|)", re.I)


@dataclass(frozen=True)
class Article:
    title: str
    text: str


def fetch_wheel(cache_dir: Path) -> Path:
    """The gensim wheel, downloaded once from PyPI into `cache_dir` (no install, no dependencies)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    found = sorted(cache_dir.glob(f"gensim-{GENSIM_VERSION}-*.whl"))
    if not found:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                f"gensim=={GENSIM_VERSION}",
                "--no-deps",
                "-q",
                "-d",
                str(cache_dir),
            ],
            check=True,
        )
        found = sorted(cache_dir.glob(f"gensim-{GENSIM_VERSION}-*.whl"))
    if not found:
        raise FileNotFoundError(f"pip download gensim=={GENSIM_VERSION} left no wheel in {cache_dir}")
    return found[0]


def clean_wikitext(wikitext: str) -> str:
    """Plain prose: markup stripped, image captions and table rows dropped, blank runs collapsed."""
    import mwparserfromhell

    plain = mwparserfromhell.parse(wikitext).strip_code()
    lines = [line.strip() for line in plain.splitlines()]
    kept = [line for line in lines if line and not _DROP_LINE.match(line)]
    text = "\n".join(kept)
    # "()" and "(;)" left where a pronunciation template was stripped; longer leftovers such as
    # "(; , Akhilleus, )" stay (the shipped SAE was trained on exactly this text)
    text = re.sub(r"\(\s*[;,]?\s*\)", "", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def read_articles(wheel: Path) -> list[Article]:
    """The dump's encyclopedia articles (namespace 0, redirects skipped), in dump order."""
    with zipfile.ZipFile(wheel) as archive:
        xml = bz2.decompress(archive.read(WIKI_MEMBER))
    root = ET.fromstring(xml)
    ns = root.tag.split("}")[0] + "}"
    articles = []
    for page in root.iter(f"{ns}page"):
        text = page.findtext(f"{ns}revision/{ns}text") or ""
        if page.findtext(f"{ns}ns") != "0" or page.find(f"{ns}redirect") is not None:
            continue
        if text.lstrip().lower().startswith("#redirect"):
            continue
        cleaned = clean_wikitext(text)
        if len(cleaned) > 200:
            articles.append(Article(page.findtext(f"{ns}title") or "", cleaned))
    return articles


def split(articles: list[Article]) -> tuple[list[Article], list[Article]]:
    """(train, held_out): whole articles are held out, so no held-out sentence was seen in training."""
    held = [a for i, a in enumerate(articles) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    train = [a for i, a in enumerate(articles) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    return train, held
