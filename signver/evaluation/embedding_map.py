"""`signver inspect`: a t-SNE map of test writers' embeddings and their distance distributions.

It shows what the metrics summarise: whether each writer's genuine signatures form a tight
cluster, and where that writer's skilled forgeries fall relative to it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402

from ..datasets import read_dataset, select_writers  # noqa: E402
from ..errors import InputError  # noqa: E402
from ..extractor import Extractor  # noqa: E402
from ..folders import output_folder  # noqa: E402
from ..matcher import score_trials  # noqa: E402
from . import plots  # noqa: E402
from .protocols import KIND_NAMES, p1_pairs  # noqa: E402
from .report import counted  # noqa: E402


def embedding_map(
    data_dir: str | Path, out: str | Path, split: str | None = None, test_writers: str | None = None,
    model: str | None = None, max_writers: int = 12, progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Write `tsne.png` (up to `max_writers` writers: dots genuine, crosses forged) and
    `distances.png` (P1 distance distributions) into `out`; `progress(done, total)` is told how
    many images have been embedded."""
    if max_writers < 1:
        raise InputError(f"--max-writers must be at least 1, got {max_writers}")
    dataset = read_dataset(data_dir)
    writers = select_writers(dataset, split, test_writers)
    out = output_folder(out, contents="tsne.png and distances.png", outside=data_dir, files=("tsne.png", "distances.png"))
    extractor = Extractor(model)
    trials = p1_pairs(dataset, writers)
    embeddings = extractor.embed(trials.images, progress=counted(progress, len(trials.images)))
    distances = score_trials(embeddings, trials.references, trials.questioned)
    groups = {KIND_NAMES[k]: distances[trials.kind == k] for k in KIND_NAMES}
    title = f"{dataset.name} ({extractor.name})"
    written = [plots.distance_plot(groups, extractor.card.threshold, title, out / "distances.png")]

    shown = writers[:max_writers]
    index = {path: i for i, path in enumerate(trials.images)}
    rows, colour, genuine = [], [], []
    for number, writer in enumerate(shown):
        for signature in dataset.genuine(writer) + dataset.forged(writer):
            rows.append(index[signature.path])
            colour.append(number)
            genuine.append(signature.genuine)
    points = TSNE(perplexity=min(30, len(rows) - 1), init="pca", random_state=0).fit_transform(embeddings[rows])
    colour, genuine = np.array(colour), np.array(genuine)
    figure, axes = plt.subplots(figsize=(7, 6))
    palette = plt.get_cmap("tab20")
    for number, writer in enumerate(shown):
        mine = colour == number
        axes.scatter(*points[mine & genuine].T, color=palette(number % 20), marker="o", s=18, label=f"writer {writer}")
        axes.scatter(*points[mine & ~genuine].T, color=palette(number % 20), marker="x", s=18)
    axes.set(title=f"t-SNE of embeddings, {title}: o genuine, x skilled forgery", xticks=[], yticks=[])
    axes.legend(fontsize=7, ncol=2, loc="best")
    written.append(plots.save(figure, out / "tsne.png"))
    return written
