"""The `signver` command. One line per result, easy to pipe; errors go to stderr.

Exit codes: 0 verified / ok, 1 not verified, 2 bad input or usage.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .errors import SignverError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Offline handwritten signature verification.")
train_app = typer.Typer(no_args_is_help=True, help="Re-make the shipped models (needs the `train` extra).")
app.add_typer(train_app, name="train")
err = Console(stderr=True)

EXIT_OK, EXIT_NOT_VERIFIED, EXIT_BAD_INPUT = 0, 1, 2


def reports_errors(command):
    """Turn signver errors into one clear line on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SignverError as error:
            err.print(f"[red]error:[/red] {error}", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None

    return wrapper


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err)


@app.command()
@reports_errors
def verify(
    reference: Path = typer.Argument(..., help="a signature image (or PDF page 1)"),
    questioned: Path = typer.Argument(..., help="the signature to check against it"),
    threshold: Optional[float] = typer.Option(None, help="accept when distance <= this (default: the model's)"),
    model: Optional[str] = typer.Option(None, help="extractor name or .onnx path"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Verify that QUESTIONED was written by the writer of REFERENCE."""
    from .api import verify as verify_pair

    result = verify_pair(reference, questioned, threshold=threshold, model=model)
    if as_json:
        print(json.dumps({"reference": str(reference), "questioned": str(questioned), **result.to_dict()}))
    else:
        decision = "verified" if result.verified else "not verified"
        print(f"{questioned}: {decision} (distance {result.distance:.4f}, threshold {result.threshold:.4f})")
    raise typer.Exit(EXIT_OK if result.verified else EXIT_NOT_VERIFIED)


@app.command()
@reports_errors
def evaluate(
    data_dir: Path = typer.Argument(..., help="dataset folder (<writer>/genuine|forged, CEDAR or BHSig260 layout)"),
    out: Path = typer.Option(..., help="folder for metrics.json and the plots"),
    protocol: str = typer.Option("p1", help="p1 (pairs) or p2 (enrolled references)"),
    references: int = typer.Option(5, help="P2: references per writer (K)"),
    split: Optional[str] = typer.Option(None, help="named split whose test writers to use: cedar, bhsig260-bengali, bhsig260-hindi"),
    test_writers: Optional[str] = typer.Option(None, help="'all' or a comma-separated list of writers (when no --split)"),
    model: Optional[str] = typer.Option(None, help="extractor name or .onnx path"),
    fusion: str = typer.Option("mean", help="P2: how distances to the K references combine (mean, min, median)"),
) -> None:
    """Measure a model on a dataset with protocol P1 or P2 and write DIR/metrics.json + plots."""
    from .evaluation import evaluate as run

    if split and test_writers:
        raise typer.BadParameter("give --split or --test-writers, not both")
    with progress_bar() as bar:
        task = bar.add_task("embedding", total=None)
        metrics = run(
            data_dir, out, protocol.lower(), references, split, test_writers, model, fusion,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    keys = ("n_writers", "n_positive", "n_skilled", "n_random", "eer_skilled", "eer_random", "auc_skilled",
            "balanced_accuracy_skilled", "threshold", "frr_at_threshold", "far_skilled_at_threshold", "far_random_at_threshold")
    for key in keys:
        value = metrics.get(key)
        print(f"{key:28s} {value:.4f}" if isinstance(value, float) else f"{key:28s} {value}")
    print(f"wrote {out / 'metrics.json'}")


@app.command()
@reports_errors
def inspect(
    data_dir: Path = typer.Argument(..., help="dataset folder"),
    out: Path = typer.Option(..., help="folder for tsne.png and distances.png"),
    split: Optional[str] = typer.Option(None, help="named split whose test writers to show"),
    test_writers: Optional[str] = typer.Option(None, help="'all' or a comma-separated list of writers"),
    model: Optional[str] = typer.Option(None, help="extractor name or .onnx path"),
    max_writers: int = typer.Option(12, help="writers drawn in the t-SNE map"),
) -> None:
    """Look inside a model: t-SNE map of writers' embeddings and distance distributions."""
    from .evaluation.embedding_map import embedding_map

    for path in embedding_map(data_dir, out, split, test_writers, model, max_writers):
        print(f"wrote {path}")


@app.command()
@reports_errors
def models() -> None:
    """List the shipped models with their cards' key facts."""
    from .models import available_models

    for card in available_models():
        threshold = "none" if card.threshold is None else f"{card.threshold:.4f}"
        print(f"{card.name}\t{card.kind}\tinput {card.input_size[0]}x{card.input_size[1]}\tthreshold {threshold}\t{card.description}")


@app.command()
@reports_errors
def demo(writers: int = typer.Option(3, help="synthetic writers to draw")) -> None:
    """Verify signature pairs the project draws itself and print each decision."""
    from . import synth
    from .api import verify as verify_pair

    for label, a, b in synth.pair_examples(3 * writers):
        result = verify_pair(a, b)
        decision = "verified" if result.verified else "not verified"
        print(f"{label:18s} -> {decision:12s} distance {result.distance:.4f}  threshold {result.threshold:.4f}  ({result.model})")


@train_app.command("baseline")
@reports_errors
def train_baseline(config: Path = typer.Option(..., help="YAML config, e.g. configs/baseline-effnet-lite0.yaml")) -> None:
    """Export the ImageNet-feature baseline extractor and write its model card."""
    import yaml

    from .training.baseline import make_baseline

    path = make_baseline(yaml.safe_load(config.read_text()), str(config))
    print(f"wrote {path} and {path.with_suffix('.json')}")


@train_app.command("extractor")
@reports_errors
def train_extractor(config: Path = typer.Option(..., help="YAML config, e.g. configs/extractor-resnet-ms.yaml")) -> None:
    """Train an embedding network (resumable), export it to ONNX and write its model card."""
    import yaml

    from .training.loop import train_extractor as run

    path = run(yaml.safe_load(config.read_text()), str(config))
    print(f"wrote {path} and {path.with_suffix('.json')}")
