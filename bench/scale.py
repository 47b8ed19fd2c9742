"""Scale: flukeid's gallery at 100k-1M photos, bare FAISS against flukeid, and the FAISS against the Milvus store.

Synthetic unit vectors (--dim, default 256) in clusters of three photos, one individual each, so recall means
something: a query (a fresh noisy draw of a random cluster) has true neighbours, its cluster's photos. Sections:

- query cost: bare FAISS HNSW (flukeid's parameters: 32 neighbours, efConstruction 40, efSearch 64) against
  flukeid's `Gallery.search_scores` (the search plus per-individual scores, as the Identifier calls it), one query at
  a time, k=200, interleaved query by query; p50 ms and their ratio (goal: <= 1.2x at 1M)
- vector stores, through flukeid's Gallery (hnsw), bare FAISS as reference: build and enrol throughput (vectors/s;
  enrol: batches of 5 photos, as `flukeid enroll`), recall@10 against exact search and the share of each query's
  cluster mates found in its top 10 (what identification needs), p50 ms of a single-query search
  (k=10), and memory per million photos (the store's bytes on disk, the process's RSS growth while building it)

    python bench/scale.py                          # 100,000 photos (minutes on 2 cores)
    python bench/scale.py --sizes 100000 1000000   # and a million (about an hour on 2 cores)
    python bench/scale.py --stores faiss           # without Milvus Lite
    python bench/scale.py --sizes 1000000 --stores faiss --sections query   # only the query cost

main() runs the SECTIONS (all, or those named by --sections) in order for every size, each printing its markdown
table; Ray Data and one photo end to end are `bench/scale_ray.py`'s.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from flukeid.gallery import Gallery, SearchSettings
from flukeid.gallery.index import HNSW_NEIGHBOURS
from flukeid.progress import setup_logging

log = logging.getLogger("bench")

PHOTOS_PER_INDIVIDUAL = 3
SEARCH_K = 200  # the Identifier's shortlist search
RECALL_K = 10
ENROLS, ENROL_PHOTOS = 20, 5
MILVUS_QUERIES = 50  # Milvus Lite answers in milliseconds to tens of them: fewer queries keep the run short
CHUNK = 100_000  # photos per gallery write while building (bounds the float64 copy a write makes)


# -- the workload ----------------------------------------------------------------------------------------------------


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class Workload:
    """Gallery vectors (N, D) unit float32 with their individuals (N,), unit queries (Q, D), the exact top-10
    gallery photo ids (Q, 10) of each query (photo i of the gallery has id i + 1, as a new gallery numbers them),
    and the ids of each query's cluster mates (Q, 3), its true neighbours (0 where a cluster has fewer photos)."""

    vectors: np.ndarray
    names: list[str]
    queries: np.ndarray
    exact: np.ndarray
    mates: np.ndarray


def workload(n: int, dim: int, n_queries: int, seed: int = 0) -> Workload:
    """n photos in clusters of three around random unit centres; cluster mates have cosine about 0.6, a random
    pair about 0 +- 1/sqrt(dim)."""
    rng = np.random.default_rng(seed)
    noise = 0.8 / np.sqrt(dim)
    n_individuals = max(1, n // PHOTOS_PER_INDIVIDUAL)
    centres = _unit(rng.standard_normal((n_individuals, dim), dtype=np.float32))
    owner = np.arange(n) % n_individuals
    vectors = np.empty((n, dim), np.float32)
    for start in range(0, n, CHUNK):
        part = owner[start : start + CHUNK]
        vectors[start : start + len(part)] = _unit(centres[part] + noise * rng.standard_normal((len(part), dim)))
    asked = rng.integers(n_individuals, size=n_queries)
    queries = _unit(centres[asked] + noise * rng.standard_normal((n_queries, dim)))
    exact = faiss.IndexFlatIP(dim)
    exact.add(vectors)
    _, places = exact.search(queries, RECALL_K)
    mates = asked[:, None] + n_individuals * np.arange(PHOTOS_PER_INDIVIDUAL)  # photo i shows individual i % n
    mates = np.where(mates < n, mates + 1, 0)
    return Workload(vectors, [f"w{i:07d}" for i in owner], queries, places.astype(np.int64) + 1, mates)


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact top-k ids (Q, k) among the ids found (Q, k)."""
    return float(np.mean([len(set(f) & set(e)) / exact.shape[1] for f, e in zip(found.tolist(), exact.tolist())]))


def mates_found(found: np.ndarray, mates: np.ndarray) -> float:
    """Share of the queries' true neighbours, their cluster mates (Q, 3; 0 for none), among the ids found (Q, k):
    what identification needs. Recall against exact search also counts the near-ties among unrelated photos that
    fill the rest of an exact top-10, which no approximate index is expected to reproduce."""
    hits = [len(set(f) & set(m) - {0}) for f, m in zip(found.tolist(), mates.tolist())]
    return sum(hits) / int((mates > 0).sum())


# -- measuring -------------------------------------------------------------------------------------------------------


def rss_mb() -> float:
    """Resident memory of this process, MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def disk_bytes(paths: Sequence[Path]) -> int:
    """Bytes of the files at or under the paths."""
    files = [p for path in paths for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()]
    return sum(p.stat().st_size for p in files)


def p50_ms(calls: Sequence[Callable[[np.ndarray], object]], queries: np.ndarray) -> list[float]:
    """Median ms per single query of each call, interleaved query by query so machine load hits all alike."""
    for call in calls:
        call(queries[:1])  # warm up
    times: list[list[float]] = [[] for _ in calls]
    for query in queries:
        one = query[None]
        for spent, call in zip(times, calls):
            start = time.perf_counter()
            call(one)
            spent.append(time.perf_counter() - start)
    return [1000 * float(np.median(spent)) for spent in times]


@dataclass
class Built:
    """A searchable copy of the workload: ``search(queries (Q, D), k) -> ids (Q, k)``, how long it took to build,
    the RSS growth while building it (MB) and the bytes it keeps on disk."""

    name: str
    search: Callable[[np.ndarray, int], np.ndarray]
    build_s: float
    rss_mb: float
    disk: int
    gallery: Gallery | None = None
    index: faiss.Index | None = None


@dataclass
class Bench:
    """One size's workload and what is built on it, each built once, when a section first needs it."""

    work: Workload
    folder: Path
    stores: Sequence[str]
    built: dict[str, Built] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.work.vectors)

    def bare(self) -> Built:
        """Bare FAISS HNSW with flukeid's parameters."""
        if "bare" not in self.built:
            before, start = rss_mb(), time.perf_counter()
            index = faiss.IndexHNSWFlat(self.work.vectors.shape[1], HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
            index.add(self.work.vectors)
            seconds = time.perf_counter() - start
            index.hnsw.efSearch = SearchSettings().ef_search
            size = int(faiss.serialize_index(index).size)
            search = lambda q, k: index.search(q, k)[1] + 1  # noqa: E731  (positions -> photo ids)
            self.built["bare"] = Built("bare FAISS HNSW", search, seconds, rss_mb() - before, size, index=index)
        return self.built["bare"]

    def gallery(self, store: str) -> Built:
        """flukeid's Gallery (hnsw) on a vector store, built in chunks of photos."""
        if store not in self.built:
            log.info("building the %s gallery of %d photos", store, self.n)
            path = self.folder / f"gallery-{store}"
            before, start = rss_mb(), time.perf_counter()
            gallery = Gallery.create(path, "bench", self.work.vectors.shape[1], "hnsw", store=store)
            for first in range(0, self.n, CHUNK):
                rows = slice(first, first + CHUNK)
                images = [f"{i}.jpg" for i in range(first, min(first + CHUNK, self.n))]
                gallery.add(images, self.work.names[rows], self.work.vectors[rows])
            seconds = time.perf_counter() - start
            kept = [path / name for name in ("index.faiss", "milvus.db") if (path / name).exists()]
            name = "flukeid FAISS" if store == "faiss" else "flukeid Milvus Lite"
            self.built[store] = Built(
                name, lambda q, k: gallery.search(q, k).ids, seconds, rss_mb() - before, disk_bytes(kept), gallery
            )
        return self.built[store]

    def close(self) -> None:
        for built in self.built.values():
            if built.gallery is not None:
                built.gallery.close()


# -- sections --------------------------------------------------------------------------------------------------------

Table = tuple[str, list[str]]  # the header line, and rows


def _table(columns: Sequence[str]) -> str:
    return "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)


def query_cost(bench: Bench) -> Table:
    """Bare FAISS HNSW search against flukeid's Gallery.search_scores, one query at a time, k=200."""
    index, gallery = bench.bare().index, bench.gallery("faiss").gallery
    assert index is not None and gallery is not None
    bare_ms, flukeid_ms = p50_ms(
        [lambda q: index.search(q, SEARCH_K), lambda q: gallery.search_scores(q, SEARCH_K)], bench.work.queries
    )
    header = _table(["photos", "bare FAISS HNSW p50 ms", "flukeid Gallery.search_scores p50 ms", "ratio"])
    return header, [f"| {bench.n:,} | {bare_ms:.3f} | {flukeid_ms:.3f} | {flukeid_ms / bare_ms:.2f}x |"]


def _enrol_rate(gallery: Gallery, dim: int) -> float:
    """Vectors/s of enrolling ENROLS batches of ENROL_PHOTOS photos of new individuals (then removed again)."""
    extra = _unit(np.random.default_rng(1).standard_normal((ENROLS * ENROL_PHOTOS, dim)))
    start = time.perf_counter()
    for batch in range(ENROLS):
        rows = slice(batch * ENROL_PHOTOS, (batch + 1) * ENROL_PHOTOS)
        images = [f"enrol-{batch}-{i}.jpg" for i in range(ENROL_PHOTOS)]
        gallery.add(images, [f"enrolled{batch}"] * ENROL_PHOTOS, extra[rows])
    seconds = time.perf_counter() - start
    return len(extra) / seconds


def vector_stores(bench: Bench) -> Table:
    """Build and enrol throughput, recall@10, single-query latency and memory of each store."""
    work, per_million = bench.work, 1e6 / bench.n
    header = _table(
        [
            "photos",
            "store",
            "build vectors/s",
            "enrol vectors/s",
            f"recall@{RECALL_K}",
            f"mates found@{RECALL_K}",
            f"search p50 ms (k={RECALL_K})",
            "store on disk MB / 1M photos",
            "RSS growth MB / 1M photos",
        ]
    )
    rows = []
    for built in [bench.bare()] + [bench.gallery(store) for store in bench.stores]:
        queries = work.queries if built.name != "flukeid Milvus Lite" else work.queries[:MILVUS_QUERIES]
        found = built.search(queries, RECALL_K)
        (latency,) = p50_ms([lambda q, b=built: b.search(q, RECALL_K)], queries)
        enrol = f"{_enrol_rate(built.gallery, work.vectors.shape[1]):,.0f}" if built.gallery is not None else "-"
        rows.append(
            f"| {bench.n:,} | {built.name} | {bench.n / built.build_s:,.0f} | {enrol} | "
            f"{recall(found, work.exact[: len(queries)]):.3f} | {mates_found(found, work.mates[: len(queries)]):.3f} | "
            f"{latency:.3f} | "
            f"{built.disk * per_million / 2**20:,.0f} | {built.rss_mb * per_million:,.0f} |"
        )
    return header, rows


SECTIONS: dict[str, tuple[str, Callable[[Bench], Table]]] = {
    "query": ("Query cost: bare FAISS HNSW vs flukeid (single query, k=200)", query_cost),
    "stores": ("Vector stores through flukeid's Gallery (hnsw)", vector_stores),
}


# -- main ------------------------------------------------------------------------------------------------------------


def _benches(args: argparse.Namespace, root: Path) -> Iterator[Bench]:
    for n in args.sizes:
        log.info("workload: %d photos of %d dims, %d queries", n, args.dim, args.queries)
        bench = Bench(workload(n, args.dim, args.queries), root / f"n{n}", args.stores)
        bench.folder.mkdir(parents=True)
        try:
            yield bench
        finally:
            bench.close()
            shutil.rmtree(bench.folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000], help="gallery sizes (photos)")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--stores", nargs="+", default=["faiss", "milvus"], choices=["faiss", "milvus"])
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--work", type=Path, default=None, help="folder for the galleries (default: a temporary one)")
    args = parser.parse_args()
    setup_logging()
    if "faiss" not in args.stores:
        args.stores = ["faiss", *args.stores]  # the query-cost section compares against it
    root = Path(tempfile.mkdtemp(prefix="flukeid-scale-", dir=args.work))
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads; dim {args.dim}\n")
    try:
        for bench in _benches(args, root):
            for title, section in (SECTIONS[name] for name in args.sections):
                header, rows = section(bench)
                print(f"### {title}\n\n{header}\n" + "\n".join(rows) + "\n", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
