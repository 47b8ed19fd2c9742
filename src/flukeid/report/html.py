"""A self-contained HTML report: each query photo beside its candidates' best catalogue photos."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from flukeid import NEW_WHALE
from flukeid.data.images import read_image
from flukeid.errors import ImageError
from flukeid.identify.predict import Prediction

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;background:#f6f7f9;color:#1d2733}
.q{display:flex;gap:.75rem;align-items:flex-start;background:#fff;border-radius:8px;padding:.75rem;margin:.75rem 0;
box-shadow:0 1px 3px #0002}.c{text-align:center;font-size:.8rem;width:170px}.c img{max-width:160px;max-height:120px;
border-radius:4px}.query img{max-width:220px;max-height:160px}.hit{outline:3px solid #2a9d57}.new{color:#7a4bc4}
.err{color:#b3261e}h1{font-size:1.3rem}
"""


def thumbnail(path: Path | None, size: int = 220) -> str:
    """A data: URI of a small JPEG, or '' when the photo cannot be read."""
    if path is None:
        return ""
    try:
        image = read_image(Path(path))
    except ImageError:
        return ""
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _candidate(label: str, score: float, photo: Path | None, truth: str | None) -> str:
    hit = " hit" if truth is not None and label == truth else ""
    if label == NEW_WHALE:
        return f'<div class="c new{hit}"><div style="height:120px">new individual</div>threshold {score:.3f}</div>'
    src = thumbnail(photo, 160)
    image = f'<img src="{src}" alt="{html.escape(label)}">' if src else "(no photo)"
    return f'<div class="c{hit}">{image}<br>{html.escape(label)}<br>{score:.3f}</div>'


def write_report(
    predictions: Sequence[Prediction],
    best_photos: Mapping[str, Path],
    out: Path,
    truths: Mapping[str, str] | None = None,
    title: str = "flukeid identification report",
    limit: int = 200,
) -> Path:
    """Write ``out`` (HTML). ``best_photos``: individual -> a catalogue photo; ``truths``: image -> answer."""
    rows = []
    for p in list(predictions)[:limit]:
        truth = truths.get(p.image) if truths else None
        probability = "" if p.probability is None else f"<br>P(best is right) {p.probability:.2f}"
        header = f"<b>{html.escape(p.image)}</b>{probability}" + (f"<br>truth: {html.escape(truth)}" if truth else "")
        if p.error:
            rows.append(f'<div class="q"><div class="c query err">{header}<br>{html.escape(p.error)}</div></div>')
            continue
        cells = [
            _candidate(label, score, best_photos.get(label), truth)
            for label, score in zip(p.ranking.ids, p.ranking.scores)
        ]
        query = f'<div class="c query"><img src="{thumbnail(p.path)}" alt="query"><br>{header}</div>'
        rows.append(f'<div class="q">{query}{"".join(cells)}</div>')
    more = f"<p>{len(predictions) - limit} more queries not shown.</p>" if len(predictions) > limit else ""
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(rows)}{more}</body></html>"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
