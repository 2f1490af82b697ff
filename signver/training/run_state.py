"""What every training loop here shares: the device it trains on, AdamW with warm-up then cosine
decay, a resumable `last.pt` checkpoint, and the progress bar's columns."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import platform
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..errors import InputError


def training_device(config: dict) -> torch.device:
    """The config's `device`: cpu (the default), cuda, or auto (a CUDA GPU when torch sees one).
    A GPU trains the same recipe in minutes instead of an hour; what it makes runs on any CPU."""
    name = str(config.get("device", "cpu"))
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.split(":")[0] not in ("cpu", "cuda"):
        raise InputError(f"unknown training device {name!r}: use cpu, cuda or auto")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"the config asks for device {name!r}, but torch sees no CUDA GPU here: use cpu or auto")
    return torch.device(name)


def machine_name(device: torch.device | None = None) -> str:
    """What a card says trained the model: the GPU's name, else the CPU's (default)."""
    return torch.cuda.get_device_name(device) if device is not None and device.type == "cuda" else platform.processor() or platform.machine()


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to zero at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def optimizer_and_schedule(network: torch.nn.Module, config: dict, total: int, warmup: int):
    """AdamW over the trainable parameters and its warm-up + cosine schedule over `total` steps."""
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], lr=config["lr"],
                                  weight_decay=config.get("weight_decay", 1e-4))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, total, warmup))


# what a run learns from and how, which its sittings must share (how long it runs may change: a
# run is extended by resuming with more steps; so may what is done after the training, such as
# the size it is served at); lr and weight_decay are compared in the optimiser's state
SHAPES_TRAINING = frozenset({"data", "loss", "network", "batch", "input", "patch", "seed", "init", "init_from", "augment_strength",
                             "box_weight", "synthetic_fraction", "clean_fraction", "flourish_fraction", "hand_stroke_fraction",
                             "fade_probability", "elements", "fonts", "min_fonts", "jitter", "jitters", "detector", "cache_size",
                             "max_pixels", "window", "expand", "pad", "mirror", "loss_beta", "adapt_frozen_bn_steps"})


def shaping(config: dict) -> dict:
    """The settings that shape what a run learns, as its checkpoints hold them (`made_by`)."""
    return json.loads(json.dumps({k: v for k, v in config.items() if k in SHAPES_TRAINING}, default=str))


def resume(checkpoint: Path, network: torch.nn.Module, optimizer, scheduler, total: int, unit: str = "step",
           config: dict | None = None) -> dict:
    """Restore a run from `checkpoint` if it exists; returns its other fields (empty if new).
    A run goes on only as its config began it: a changed learning rate or weight decay would
    be replaced by the checkpoint's in silence, other data, held-out writers or loss would be
    mixed into a run that says it had them all along (`config`, against the checkpoint's
    `made_by`), and a run past the config's `total` steps (or epochs: `unit`) would say it
    took `total`; all are refused."""
    if not checkpoint.is_file():
        return {}
    asked = [(group["initial_lr"], group["weight_decay"]) for group in optimizer.param_groups]  # set by the scheduler
    try:
        state = torch.load(checkpoint, weights_only=False, map_location="cpu")  # a GPU run resumes anywhere
        network.load_state_dict(state.pop("network"))
        optimizer.load_state_dict(state.pop("optimizer"))
        scheduler.load_state_dict(state.pop("scheduler"))
    except Exception as error:  # torch raises a different kind for a cut file, a foreign pickle, another network's weights
        reason = " ".join(str(error).split())[:240] or type(error).__name__
        raise InputError(f"cannot resume from {checkpoint}: it is damaged or was saved by another config ({reason}); "
                         "move it away to start the run over") from None
    began = [(group["initial_lr"], group["weight_decay"]) for group in optimizer.param_groups]
    if began != asked:
        raise InputError(f"{checkpoint.parent} holds a run begun with lr {began[0][0]:g} and weight_decay {began[0][1]:g}; the config "
                         f"now asks lr {asked[0][0]:g} and weight_decay {asked[0][1]:g}: set them back, or give a new run_dir")
    began_with, now = state.get("made_by"), shaping(config) if config is not None else None
    if began_with is not None and now is not None and began_with != now:
        changed = sorted(set(began_with) | set(now), key=str)
        changed = [f"{key}: {began_with.get(key)!r} -> {now.get(key)!r}" for key in changed if began_with.get(key) != now.get(key)]
        raise InputError(f"{checkpoint.parent} holds a run begun with other settings ({'; '.join(changed)[:600]}): set them back, "
                         "or give a new run_dir")
    done = int(state.get(unit, 0))
    if done > total:
        raise InputError(f"{checkpoint.parent} holds a run that has already taken {done} {unit}s, more than the config's {total}: "
                         f"give at least {done}, or a new run_dir")
    return state


def training_log(path: Path, done: int, unit: str = "step"):
    """The run's log (JSON lines) open for appending, without its records of {unit}s after the
    `done` its checkpoint holds: a run stopped after logging work it had not yet saved does that
    work again on resuming, and would log it twice."""
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if _logged_within(line, unit, done)]
        if kept != lines:
            path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    return open(path, "a", encoding="utf-8")


def _logged_within(line: str, unit: str, done: int) -> bool:
    try:
        return int(json.loads(line).get(unit, 0)) <= done
    except (ValueError, AttributeError, TypeError):  # a line cut by the stop
        return False


_HELD: set[Path] = set()  # run folders this process is running in now


@contextlib.contextmanager
def holding_run_dir(run_dir: Path) -> Iterator[None]:
    """Make the run folder and hold it while the run goes on: a second run in the same folder at
    once would write over this one's caches, checkpoint and log. Refused at once, naming the
    folder. Held again inside this process, or in a folder nothing may be written to (a run
    whose caches and checkpoints are all made, read from a read-only disk), it goes on unheld."""
    run_dir.mkdir(parents=True, exist_ok=True)
    key = run_dir.resolve()
    try:
        handle = None if key in _HELD else open(run_dir / ".lock", "a")
    except OSError:  # read-only: no other run can write here either
        handle = None
    if handle is None:
        yield
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{run_dir} is in use by another training run; wait for it to end, or give another run_dir") from None
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)
    finally:
        handle.close()  # and with it the lock


def save_atomically(state: dict, path: Path) -> None:
    """torch.save through a temporary file: a run stopped mid-write keeps its previous checkpoint
    instead of a cut one that can no longer be resumed."""
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def save_checkpoint(checkpoint: Path, network: torch.nn.Module, optimizer, scheduler, **fields) -> None:
    save_atomically({"network": network.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), **fields},
                    checkpoint)


def progress_columns(label: str = "training") -> tuple:
    return (TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"), TimeRemainingColumn())


def run_steps(label: str, steps: int, optimizer, scheduler, loss_at: Callable[[int], torch.Tensor]) -> list[dict]:
    """Take `steps` optimiser steps on `loss_at(step)` behind a progress bar; returns the loss
    log (the smoothed loss every 100 steps)."""
    log, running = [], None
    with Progress(*progress_columns(label)) as progress:
        task = progress.add_task(label, total=steps, status="")
        for step in range(steps):
            loss = loss_at(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if (step + 1) % 100 == 0:
                log.append({"step": step + 1, "loss": round(running, 4)})
            progress.update(task, advance=1, status=f"loss {running:.3f}")
    return log
