"""A self-contained HTML report: a summary, the plots a curator asks for, the surest mistakes side by side, then
each query photo beside its candidates' catalogue photos with their calibrated probabilities."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from flukeid import NEW_WHALE
from flukeid.data.images import read_image
from flukeid.errors import ImageError
from flukeid.identify.identifier import Prediction
from flukeid.report import plots
from flukeid.report.summary import (
    ReportCatalogue,
    answered,
    map5,
    map5_by_photos,
    novelty,
    score_samples,
    worst_mistakes,
)

QUERY_COLUMN, CANDIDATE_COLUMN = 240, 176
"""Column widths (px) of the queries table: fixed, so no photo pushes into its neighbour."""

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;background:#f6f7f9;color:#1d2733}
h1{font-size:1.3rem}h2{font-size:1.1rem;margin-top:1.5rem}
.summary,.plots{margin-bottom:1rem}
.summary{display:flex;flex-wrap:wrap;gap:.75rem}.stat{background:#fff;border-radius:8px;padding:.6rem 1rem;
box-shadow:0 1px 3px #0002;min-width:8rem}.stat b{display:block;font-size:1.4rem}.stat span{font-size:.8rem;
color:#566}
.plots{display:flex;flex-wrap:wrap;gap:.75rem}.plots figure{margin:0;background:#fff;border-radius:8px;
padding:.5rem;box-shadow:0 1px 3px #0002}.plot{display:block;width:460px;height:auto}
figcaption{font-size:.8rem;color:#566;max-width:460px}
table{table-layout:fixed;border-collapse:separate;border-spacing:0 .5rem}
td,th{vertical-align:top;text-align:center;font-size:.8rem;overflow:hidden;overflow-wrap:anywhere;padding:.4rem;
background:#fff}th{background:none}
.thumb{display:block;box-sizing:border-box;width:160px;height:120px;object-fit:contain;margin:0 auto .25rem;
background:#eef1f4;border-radius:4px}.query .thumb{width:220px;height:150px}
.newbox{display:flex;align-items:center;justify-content:center;color:#7a4bc4}
.hit{box-shadow:inset 0 0 0 3px #2a9d57}.new{color:#7a4bc4}.err{color:#b3261e}.p{font-weight:600}
"""


class Thumbnails:
    """data: URIs of small JPEGs of photos, each made once per report."""

    def __init__(self) -> None:
        self._made: dict[tuple[Path, int], str] = {}

    def __call__(self, path: Path | None, size: int = 220) -> str:
        if path is None:
            return ""
        key = (Path(path), size)
        if key not in self._made:
            self._made[key] = thumbnail(Path(path), size)
        return self._made[key]


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


def _photo(src: str, alt: str) -> str:
    if not src:
        return '<div class="thumb newbox">(no photo)</div>'
    return f'<img class="thumb" src="{src}" alt="{html.escape(alt)}">'


def _individual_photo(label: str, catalogue: ReportCatalogue, thumbs: Thumbnails) -> str:
    if label == NEW_WHALE:
        return '<div class="thumb newbox">new individual</div>'
    return _photo(thumbs(catalogue.best_photos.get(label), 160), label)


def _chance(probability: float | None, score: float) -> str:
    """The calibrated probability shown (the raw score in its tooltip), or the raw score where there is none."""
    raw = "threshold" if not np.isfinite(score) else f"score {score:.3f}"
    if probability is None:
        return f'<div class="p" title="no calibration: raw score">{raw}</div>'
    return f'<div class="p" title="{raw}">P {probability:.2f}</div>'


def _candidate(
    label: str,
    score: float,
    probability: float | None,
    truth: str | None,
    catalogue: ReportCatalogue,
    thumbs: Thumbnails,
) -> str:
    hit = " hit" if truth is not None and label == truth else ""
    name = "new individual" if label == NEW_WHALE else html.escape(label)
    new = " new" if label == NEW_WHALE else ""
    title = f"threshold {score:.3f}" if label == NEW_WHALE and np.isfinite(score) else ""
    return (
        f'<td class="c{hit}{new}" title="{title}">{_individual_photo(label, catalogue, thumbs)}'
        f'<div class="name">{name}</div>{_chance(probability, score)}</td>'
    )


def _query_row(p: Prediction, truth: str | None, catalogue: ReportCatalogue, thumbs: Thumbnails, k: int) -> str:
    probability = "" if p.probability is None else f"<br>P(best is right) {p.probability:.2f}"
    header = f"<b>{html.escape(p.image)}</b>{probability}" + (f"<br>truth: {html.escape(truth)}" if truth else "")
    if p.error:
        return f'<tr><td class="query err">{header}<br>{html.escape(p.error)}</td><td colspan="{k}"></td></tr>'
    chances: Sequence[float | None] = p.probabilities or [None] * len(p.ranking.ids)
    cells = [
        _candidate(label, score, chance, truth, catalogue, thumbs)
        for label, score, chance in zip(p.ranking.ids, p.ranking.scores, chances)
    ]
    cells += ["<td></td>"] * (k - len(cells))
    query = f'<td class="query">{_photo(thumbs(p.path), "query")}{header}</td>'
    return f"<tr>{query}{''.join(cells)}</tr>"


def _table(rows: Sequence[str], k: int, head: str = "") -> str:
    columns = f'<col style="width:{QUERY_COLUMN}px">' + f'<col style="width:{CANDIDATE_COLUMN}px">' * k
    width = QUERY_COLUMN + k * CANDIDATE_COLUMN
    return f'<table style="width:{width}px"><colgroup>{columns}</colgroup>{head}{"".join(rows)}</table>'


def _stat(value: str, label: str) -> str:
    return f'<div class="stat"><b>{value}</b><span>{html.escape(label)}</span></div>'


def _summary(
    predictions: Sequence[Prediction],
    known: Sequence[tuple[Prediction, str]],
    catalogue: ReportCatalogue,
    threshold: float | None,
) -> str:
    unreadable = sum(p.error is not None for p in predictions)
    score = map5(known)
    stats = [_stat(f"{score:.3f}", f"MAP@5 over {len(known)} queries with known answers")] if score is not None else []
    stats += [
        _stat(str(len(predictions)), f"queries ({unreadable} unreadable)"),
        _stat(str(catalogue.photos), "catalogue photos"),
        _stat(str(catalogue.individuals), "individuals"),
        _stat("none" if threshold is None else f"{threshold:.3f}", "new_whale threshold"),
    ]
    return f'<section class="summary">{"".join(stats)}</section>'


def _figure(fig: Figure, caption: str) -> str:
    alt = html.escape(caption)
    return (
        f'<figure><img class="plot" src="{plots.png_data_uri(fig)}" alt="{alt}"><figcaption>{alt}</figcaption></figure>'
    )


def _plots(
    predictions: Sequence[Prediction],
    known: Sequence[tuple[Prediction, str]],
    catalogue: ReportCatalogue,
    threshold: float | None,
) -> str:
    if not known:
        best = [
            max((s for n, s in zip(p.ranking.ids, p.ranking.scores) if n != NEW_WHALE), default=np.nan)
            for p in predictions
            if not p.error
        ]
        figures = [
            _figure(
                plots.best_score_figure(np.array(best, dtype=np.float64), threshold),
                "best match score of each query; below the threshold a query is called new",
            )
        ]
        return f'<section class="plots">{"".join(figures)}</section>'
    figures = [
        _figure(
            plots.similarity_figure(score_samples(known), threshold),
            "scores of the top-5 candidates: the query's own individual vs other individuals",
        )
    ]
    found = novelty(known)
    if found.is_new.any():
        figures.append(_figure(plots.novelty_pr_figure(found, threshold), "calling a query new: precision vs recall"))
    figures.append(
        _figure(
            plots.map5_by_photos_figure(map5_by_photos(known, catalogue.photos_per_individual)),
            "MAP@5 by the catalogue photos of the query's individual (q: queries)",
        )
    )
    return f'<section class="plots">{"".join(figures)}</section>'


def _answer(label: str, catalogue: ReportCatalogue, thumbs: Thumbnails, kind: str, chance: str = "") -> str:
    name = "new individual" if label == NEW_WHALE else html.escape(label)
    return (
        f'<td class="{kind}">{_individual_photo(label, catalogue, thumbs)}<div class="name">{name}</div>{chance}</td>'
    )


def _mistakes(known: Sequence[tuple[Prediction, str]], catalogue: ReportCatalogue, thumbs: Thumbnails) -> str:
    found = worst_mistakes(known)
    if not found:
        return ""
    rows = []
    for m in found:
        p = m.prediction
        chance = _chance(p.probabilities[0] if p.probabilities else None, p.ranking.scores[0])
        query = f'<td class="query">{_photo(thumbs(p.path), "query")}<b>{html.escape(p.image)}</b></td>'
        wrong = _answer(m.wrong, catalogue, thumbs, "err", chance)
        rows.append(f"<tr>{query}{wrong}{_answer(m.truth, catalogue, thumbs, 'hit')}</tr>")
    head = "<tr><th>query</th><th>first answer (wrong)</th><th>right individual</th></tr>"
    return "<h2>Surest mistakes</h2>" + _table(rows, 2, head)


def write_report(
    predictions: Sequence[Prediction],
    catalogue: ReportCatalogue,
    out: Path,
    truths: Mapping[str, str] | None = None,
    title: str = "flukeid identification report",
    limit: int = 200,
    threshold: float | None = None,
) -> Path:
    """Write ``out`` (HTML, self-contained). ``truths``: image -> answer, where known (then MAP@5, the plots that
    need answers, and the mistakes); ``threshold``: the new_whale threshold the predictions were ranked with."""
    thumbs = Thumbnails()
    known = answered(predictions, truths)
    k = max([5, *(len(p.ranking.ids) for p in predictions)])
    rows = [_query_row(p, (truths or {}).get(p.image), catalogue, thumbs, k) for p in list(predictions)[:limit]]
    more = f"<p>{len(predictions) - limit} more queries not shown.</p>" if len(predictions) > limit else ""
    body = (
        f"<h1>{html.escape(title)}</h1>{_summary(predictions, known, catalogue, threshold)}"
        f"{_plots(predictions, known, catalogue, threshold)}{_mistakes(known, catalogue, thumbs)}"
        f'<h2>Queries</h2><div class="queries">{_table(rows, k)}</div>{more}'
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
