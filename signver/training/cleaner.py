"""`signver train cleaner`: a small network (a U-Net, or with `network.kind: lite0` an ImageNet
encoder, `signver.training.cleaner_lite0`) that keeps a signature's ink and drops the clutter.

Training pairs are made on the fly: a clean signature of a training writer (genuine or forged
images of the configured splits' training writers; never a test writer), optionally a
procedural one from `signver.synth`, surrounded and overlapped by `signver.overlays.clutter`
(printed text in many fonts, rules, boxes, leaders, stamps, speckle, scan degradation). The
target is the clean signature: its ink mask and, for a network with a tone head, its ink's
darkness. Pairs are brought to the working resolution the same way `signver.cleaner` does at
inference (area at most `max_pixels`), then cut or padded to a fixed patch. The network
predicts, for every pixel, the probability that it is signature ink (and that ink's tone).

Runs are resumable: `runs/<name>/last.pt` is written every `eval_every` steps and `best.pt`
whenever the validation score (`choice_score`, on fixed pairs from held-out training writers)
improves; best is exported to ONNX with its model card.
"""

from __future__ import annotations

import json
import math
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import Progress, track
from torch import nn

from .. import overlays, synth
from ..datasets import read_dataset
from ..errors import InputError
from ..images import load_image
from ..models import write_card
from .cleaner_lite0 import build_lite0_cleaner
from .data import writers_for
from .onnx_init import fold_batch_norms, load_onnx_weights
from .cache import cached_arrays
from .run_state import holding_run_dir, machine_name, optimizer_and_schedule, progress_columns, resume, save_atomically, save_checkpoint, shaping, training_log

MULTIPLE = 16  # input sides must be multiples of this: the coarsest stride (the U-Net's unshuffle 2 x three poolings, lite0's blocks)


# -- network -------------------------------------------------------------------------------


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class UNet(nn.Module):
    """A U-Net on a 2x pixel-unshuffled input: full-resolution output at a quarter of the cost.

    Input (N, 1, H, W), ink bright in [0, 1], H and W multiples of 16; output (N, 1, H, W)
    logits of "this pixel is signature ink". Encoder levels have two 3x3 convolutions, decoder
    levels one, after a bilinear upsampling and the skip connection. With `tone`, a second
    output channel gives the logit of the clean signature's ink darkness at each pixel: scan
    damage (bitonal thresholds, noise, faded ink) changes the ink's tone, and the extractor
    reads tone (docs/benchmarks.md, "Cleaner").
    """

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 128), unshuffle: int = 2, tone: bool = False):
        super().__init__()
        self.unshuffle = unshuffle
        self.encoder = nn.ModuleList()
        cin = unshuffle * unshuffle
        for c in channels:
            self.encoder.append(nn.Sequential(*_conv(cin, c), *_conv(c, c)))
            cin = c
        self.lateral = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for c in reversed(channels[:-1]):
            self.lateral.append(nn.Conv2d(cin, c, 1))
            self.decoder.append(nn.Sequential(*_conv(2 * c, c)))
            cin = c
        self.head = nn.Conv2d(cin, unshuffle * unshuffle, 1)
        self.tone = nn.Conv2d(cin, unshuffle * unshuffle, 1) if tone else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pixel_unshuffle(x, self.unshuffle)
        skips = []
        for i, level in enumerate(self.encoder):
            if i:
                x = F.max_pool2d(x, 2)
            x = level(x)
            skips.append(x)
        for lateral, level, skip in zip(self.lateral, self.decoder, reversed(skips[:-1])):
            x = F.interpolate(lateral(x), scale_factor=2, mode="bilinear", align_corners=False)
            x = level(torch.cat([x, skip], 1))
        ink = F.pixel_shuffle(self.head(x), self.unshuffle)
        if self.tone is None:
            return ink
        return torch.cat([ink, F.pixel_shuffle(self.tone(x), self.unshuffle)], 1)


class InkProbability(nn.Module):
    """What is exported: the network followed by a sigmoid (P(ink), and the ink's darkness)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.network(x))


UNET_SETTINGS = {"kind", "channels", "unshuffle", "tone"}  # the `network` keys the U-Net reads


def build_cleaner_network(config: dict) -> nn.Module:
    """The configured cleaner network: the plain U-Net, or (`kind: lite0`) one whose encoder
    holds EfficientNet-Lite0's ImageNet weights (`signver.training.cleaner_lite0`)."""
    kind = config.get("kind", "unet")
    if kind == "lite0":
        return build_lite0_cleaner(config)
    if kind != "unet":
        raise InputError(f"network.kind must be unet or lite0, not {kind!r}")
    unknown = set(config) - UNET_SETTINGS
    if unknown:
        raise InputError(f"network keys {sorted(unknown)} do not apply to kind unet (it reads {sorted(UNET_SETTINGS - {'kind'})})")
    return UNet(tuple(config.get("channels", (16, 32, 64, 128))), int(config.get("unshuffle", 2)), bool(config.get("tone", False)))


# -- data ----------------------------------------------------------------------------------


def load_clean_signatures(sources: list[dict], role: str, cache: Path | None = None, max_pixels: int = 160_000) -> list[np.ndarray]:
    """Every image (genuine and forged) of the training writers of each source (`role`
    'train'), or of its held-out training writers (`role` 'holdout'), whitened and shrunk to
    at most `max_pixels`. Test writers of a source's split are never read."""
    def read() -> dict[str, np.ndarray]:
        paths = [path for source_paths in paths_by_source(sources, role) for path in source_paths]
        images = [load_clean_signature(p, max_pixels) for p in track(paths, description=f"reading {role} signatures")]
        return {"shapes": np.array([i.shape for i in images]).reshape(-1, 2),
                "pixels": np.concatenate([i.ravel() for i in images]) if images else np.zeros(0, np.uint8)}

    read_from = [{key: value for key, value in source.items() if key != "weight"} for source in sources]  # weights change draws, not images
    data = cached_arrays(cache, {"sources": read_from, "role": role, "max_pixels": max_pixels}, read)
    shapes, flat = data["shapes"], data["pixels"]
    ends = np.cumsum([h * w for h, w in shapes])
    return [flat[e - h * w : e].reshape(h, w) for (h, w), e in zip(shapes, ends)]


def load_clean_signature(path: Path, max_pixels: int = 160_000) -> np.ndarray:
    """One scan as load_clean_signatures holds it: shrunk to at most `max_pixels`, whitened."""
    return overlays.whiten(to_working(load_image(path), max_pixels)[0])


def paths_by_source(sources: list[dict], role: str) -> list[list[Path]]:
    """Each source's images (genuine and forged) of its training writers (`role` 'train') or of
    its held-out training writers ('holdout'), in the order load_clean_signatures reads them."""
    out = []
    for source in sources:
        dataset = read_dataset(source["path"])
        out.append([s.path for writer in writers_for(source, dataset, role) for s in dataset.genuine(writer) + dataset.forged(writer)])
    return out


def source_weights(sources: list[dict]) -> list[float]:
    """Each data source's sampling `weight` (1 when absent), refused unless a number of at least
    0 with some above 0: checked before minutes of reading images."""
    weights = []
    for source in sources:
        weight = source.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise InputError(f"data: the weight of {source.get('path')} must be a number of at least 0, not {weight!r}")
        weights.append(float(weight))
    if weights and sum(weights) <= 0:
        raise InputError("data: every source has weight 0, so there is nothing to draw")
    return weights


def sampling_weights(sources: list[dict], n_images: int, cache: Path | None = None) -> np.ndarray | None:
    """The chance of drawing each training image: proportional to its source's `weight` (1 when
    absent), so a source's share of the draws is its weight times its count over the sum of
    those; None (every image alike, as by count alone) when no source has a weight other than 1."""
    weights = source_weights(sources)
    if all(weight == 1 for weight in weights):
        return None
    counts = [len(paths) for paths in paths_by_source(sources, "train")]
    if sum(counts) != n_images:
        raise InputError(f"the {n_images} training images read are not the {sum(counts)} the data sources hold now"
                         + (f"; delete {cache} so that they are read again" if cache else ""))
    chances = np.concatenate([np.full(n, weight) for weight, n in zip(weights, counts)])
    return chances / chances.sum()


def to_working(image: np.ndarray, max_pixels: int) -> tuple[np.ndarray, float]:
    """The image at the cleaner's working resolution (area at most `max_pixels`) and the scale."""
    h, w = image.shape
    s = min(1.0, math.sqrt(max_pixels / (h * w)))
    if s >= 1:
        return image, 1.0
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA), s


def add_hand_stroke(signature: np.ndarray, rng: np.random.Generator, flourish: float = 0.0) -> np.ndarray:
    """The signature with one more nearly straight stroke of its own pen: an underline, a long
    ascender or a slash, slightly bent, tapered, touching the ink; or, for a `flourish` share of
    them, a sweeping underline drawn out of the first letters. Printed rules are straight too;
    these teach the network that a long stroke in the writer's own ink is signature."""
    out = overlays.whiten(signature)
    ink = out < 255 * (1 - overlays.INK_DARKNESS)
    ys, xs = np.nonzero(ink)
    if len(ys) < 20:
        return out
    thickness = cv2.distanceTransform(ink.astype(np.uint8), cv2.DIST_L2, 3)
    pen = float(np.clip(2 * np.median(thickness[ink]), 1.0, 8.0))
    tone = float(np.median(out[ink]))
    if flourish > 0 and rng.random() < flourish:  # drawn only when asked, so other configs keep their random stream
        return _draw_stroke(out, _flourish_path(xs, ys, out.shape[0], rng), pen, tone, rng)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    kind = rng.random()
    i = rng.integers(len(ys))
    if kind < 0.65:  # underline or cross-stroke, from an ink pixel
        length = (x1 - x0) * rng.uniform(0.3, 1.0)
        angle = rng.normal(0, 3) + (180 if rng.random() < 0.5 else 0)
        start = (xs[i], ys[i]) if rng.random() < 0.5 else (rng.uniform(x0, x1), rng.uniform(y0 + 0.6 * (y1 - y0), y1 + 0.1 * (y1 - y0)))
    elif kind < 0.85:  # tall stroke: an ascender or a capital's stem
        length = (y1 - y0) * rng.uniform(0.3, 0.9)
        angle = -90 + rng.normal(0, 10)
        start = (xs[i], ys[i])
    else:  # slash or dash
        length = max(x1 - x0, y1 - y0) * rng.uniform(0.15, 0.6)
        angle = rng.uniform(-70, 70)
        start = (xs[i], ys[i])
    t = np.linspace(0, 1, 40)
    direction = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
    normal = np.array([-direction[1], direction[0]])
    bend = rng.normal(0, 0.03) * length * np.sin(np.pi * t)
    wobble = np.interp(t, np.linspace(0, 1, 6), rng.normal(0, 0.3, 6))
    points = np.array(start, float) + np.outer(t * length, direction) + np.outer(bend + wobble, normal)
    return _draw_stroke(out, points, pen, tone, rng)


def _flourish_path(xs: np.ndarray, ys: np.ndarray, image_height: int, rng: np.random.Generator) -> np.ndarray:
    """40 points of a sweeping underline: out of the lower part of the signature's first
    letters, down under the ink (staying on the image), then to the right, often rising, 0.6 to
    1.15 of its width."""
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    width, height = max(x1 - x0, 1), max(y1 - y0, 1)
    first = (xs < x0 + 0.3 * width) & (ys > y0 + 0.4 * height)
    i = rng.choice(np.nonzero(first)[0]) if first.any() else int(np.argmin(xs))
    start = np.array([xs[i], ys[i]], float)
    low = np.array([start[0] + width * rng.uniform(-0.08, 0.15), min(y1 + height * rng.uniform(0.0, 0.3), image_height - 4.0)])
    rise = math.tan(math.radians(rng.normal(6, 6)))
    reach = width * rng.uniform(0.6, 1.15)
    end = np.array([x0 + reach, low[1] - rise * (x0 + reach - low[0])])
    t = np.linspace(0, 1, 40)[:, None]
    return (1 - t) ** 2 * start + 2 * t * (1 - t) * low + t**2 * end  # a quadratic Bezier curve


def _draw_stroke(out: np.ndarray, points: np.ndarray, pen: float, tone: float, rng: np.random.Generator) -> np.ndarray:
    """`points` drawn onto the whitened signature `out` as one tapered stroke of its pen."""
    t = np.linspace(0, 1, len(points))
    canvas = np.zeros(out.shape, np.float32)
    width = pen * rng.uniform(0.7, 1.3)
    taper = np.minimum(1.0, np.minimum(t, 1 - t) * rng.uniform(4, 12)) * 0.6 + 0.4
    for k in range(len(points) - 1):
        a, b = np.round(points[k] * 4).astype(int), np.round(points[k + 1] * 4).astype(int)
        cv2.line(canvas, tuple(int(v) for v in a), tuple(int(v) for v in b), 1.0, max(1, int(round(width * taper[k]))), cv2.LINE_AA, shift=2)
    shade = np.clip(tone + rng.normal(0, 10), 0, 200)
    mixed = out.astype(np.float32) * (1 - canvas) + shade * canvas
    return np.minimum(out, mixed).astype(np.uint8)


def make_pair(signature: np.ndarray, rng: np.random.Generator, config: dict) -> tuple[np.ndarray, np.ndarray]:
    """One training pair at working resolution: (dirty, clean target), uint8 grey, full size."""
    max_pixels = int(config.get("max_pixels", 65536))
    # the signature's own size: from tiny crops of low-resolution pages to large scans
    area = signature.shape[0] * signature.shape[1]
    wanted = math.exp(rng.uniform(math.log(0.04 * max_pixels), math.log(2.0 * max_pixels)))
    f = min(1.0, math.sqrt(wanted / area))
    if f < 1:
        signature = cv2.resize(signature, (max(8, round(signature.shape[1] * f)), max(8, round(signature.shape[0] * f))), interpolation=cv2.INTER_AREA)
    if rng.random() < config.get("hand_stroke_fraction", 0.0):
        signature = add_hand_stroke(signature, rng, float(config.get("flourish_fraction", 0.0)))
    fade_probability = float(config.get("fade_probability", 1.0))  # share of crops whose ink the scan damage fades
    if rng.random() < config.get("clean_fraction", 0.15):  # nothing to remove: the cleaner must change nothing
        target = overlays.whiten(signature)
        dirty = overlays.degrade(target, rng, 0.7, fade_probability) if rng.random() < 0.6 else target
    else:
        pair = overlays.clutter(signature, rng, fonts=config.get("fonts", "train"), strength=rng.uniform(0.5, 1.4),
                                elements=config.get("elements"), fade_probability=fade_probability)
        dirty, target = pair.image, pair.target
    dirty, _ = to_working(dirty, max_pixels)
    target, _ = to_working(target, max_pixels)
    return dirty, target


def ink_of(target: np.ndarray | torch.Tensor):
    """The target's signature ink (True where a pixel is at least overlays.INK_DARKNESS dark)."""
    return target <= 255 * (1 - overlays.INK_DARKNESS)


def fit_patch(dirty: np.ndarray, target: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cut (at a random place, most of the time around the ink) or pad with white to `size`."""
    ph, pw = size
    h, w = dirty.shape
    if h < ph or w < pw:
        top, left = rng.integers(0, max(0, ph - h) + 1), rng.integers(0, max(0, pw - w) + 1)
        pads = ((top, max(0, ph - h - top)), (left, max(0, pw - w - left)))
        dirty, target = np.pad(dirty, pads, constant_values=255), np.pad(target, pads, constant_values=255)
        h, w = dirty.shape
    ys, xs = np.nonzero(ink_of(target))
    if len(ys) and rng.random() < 0.85:
        i = rng.integers(len(ys))
        y0 = int(np.clip(ys[i] - rng.integers(0, ph), 0, h - ph))
        x0 = int(np.clip(xs[i] - rng.integers(0, pw), 0, w - pw))
    else:
        y0, x0 = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    return dirty[y0 : y0 + ph, x0 : x0 + pw], target[y0 : y0 + ph, x0 : x0 + pw]


class PairStream(torch.utils.data.IterableDataset):
    """Endless batches of (dirty, target) patches; each worker draws from its own seed."""

    def __init__(self, signatures: list[np.ndarray], config: dict, seed: int, weights: np.ndarray | None = None):
        self.signatures, self.config, self.seed, self.weights = signatures, config, seed, weights

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        size = (int(self.config["patch"]["height"]), int(self.config["patch"]["width"]))
        batch = int(self.config["batch"])
        synthetic = float(self.config.get("synthetic_fraction", 0.1))
        while True:
            xs, ys = np.empty((batch, *size), np.uint8), np.empty((batch, *size), np.uint8)
            for k in range(batch):
                if rng.random() < synthetic or not self.signatures:
                    writer = int(rng.integers(1 << 30))
                    signature = (synth.genuine if rng.random() < 0.7 else synth.forgery)(writer, int(rng.integers(100)))
                else:
                    pick = rng.integers(len(self.signatures)) if self.weights is None else rng.choice(len(self.signatures), p=self.weights)
                    signature = self.signatures[pick]
                xs[k], ys[k] = fit_patch(*make_pair(signature, rng, self.config), size, rng)
            yield torch.from_numpy(xs), torch.from_numpy(ys)


def as_input(grey: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 grey (N, H, W), ink dark -> float (N, 1, H, W), ink bright in [0, 1]."""
    grey = torch.as_tensor(grey)
    return (1 - grey.float() / 255)[:, None]


def validation_pairs(signatures: list[np.ndarray], config: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([int(config.get("seed", 0)), 99])
    size = (int(config["patch"]["height"]), int(config["patch"]["width"]))
    pairs = [fit_patch(*make_pair(signatures[i % len(signatures)], rng, config), size, rng) for i in rng.permutation(max(n, 1))[:n]]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


# -- loss and measures ---------------------------------------------------------------------


NEAR_PIXELS = 8  # how far from the signature's ink clutter counts as touching it (`near_clutter_weights`)
HALO_PIXELS = 2  # the strokes' own halo (blur, thresholds, JPEG spread the ink this far): never clutter
CLUTTER_DARKNESS = 0.35  # an input pixel at least this dark that is not signature ink is clutter, not paper


def within(target: torch.Tensor, pixels: int) -> torch.Tensor:
    """Where a pixel lies within `pixels` of the target's ink."""
    return F.max_pool2d(target, 2 * pixels + 1, stride=1, padding=pixels) > 0


def near_clutter_weights(dirty: torch.Tensor, target: torch.Tensor, weight: float) -> torch.Tensor:
    """Per-pixel weights of the cross-entropy: `weight` on clutter (input ink that is not the
    signature's) within NEAR_PIXELS of the signature's ink but beyond its own halo, 1 elsewhere.
    Clutter crossing or touching the strokes is what a cleaned crop keeps, and what costs
    verification most (docs/benchmarks.md, "Cleaner"); far clutter the keep map's clusters drop
    anyway, and the halo is the stroke's own edge, which a clean scan keeps."""
    clutter = within(target, NEAR_PIXELS) & ~within(target, HALO_PIXELS) & (dirty >= CLUTTER_DARKNESS)
    return 1 + (weight - 1) * clutter.float()


def near_clutter_weight(config: dict) -> float:
    """The config's `loss.near_clutter` (1: no extra weight), refused below 0."""
    weight = float(config.get("loss", {}).get("near_clutter", 1.0))
    if not weight >= 0:
        raise InputError(f"loss.near_clutter must be a weight of at least 0, not {weight}")
    return weight


def ink_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: float = 2.0, dice: float = 1.0,
             weights: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy (missing ink costs `pos_weight` times more; each pixel also by
    `weights`, when given) plus soft Dice."""
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weights, pos_weight=torch.tensor(pos_weight))
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    soft_dice = 1 - (2 * inter + 1) / (p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)
    return bce + dice * soft_dice.mean()


def choice_score(scores: dict[str, float]) -> float:
    """What picks the exported step: the ink F-measure, less the tone error when there is one."""
    return scores["f"] - scores.get("tone_error", 0.0)


def tone_loss(logits: torch.Tensor, darkness: torch.Tensor, ink: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of the predicted ink darkness, on the target's ink pixels only: off
    the ink the tone does not matter (the cleaner whitens it)."""
    return ((torch.sigmoid(logits) - darkness).abs() * ink).sum() / ink.sum().clamp(min=1)


def mask_scores(predicted: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Pixel precision, recall (stroke recall) and F-measure of an ink mask, pooled."""
    tp = float(np.count_nonzero(predicted & target))
    precision = tp / max(1, np.count_nonzero(predicted))
    recall = tp / max(1, np.count_nonzero(target))
    return {"precision": precision, "recall": recall, "f": 2 * precision * recall / max(1e-9, precision + recall)}


def predict(network: nn.Module, dirty: np.ndarray, batch: int = 32) -> np.ndarray:
    """(N, C, H, W): P(ink), and with a tone head the ink's darkness."""
    network.eval()
    with torch.no_grad():
        out = [torch.sigmoid(network(as_input(dirty[i : i + batch]))).numpy() for i in range(0, len(dirty), batch)]
    network.train()
    return np.concatenate(out)


def validate(network: nn.Module, dirty: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Ink precision, recall and F; with a tone head also `tone_error`, the mean absolute error
    of the predicted darkness on the target's ink (0 paper, 1 black)."""
    predicted = predict(network, dirty)
    scores = ink_measures(predicted[:, 0], target)
    if predicted.shape[1] > 1:
        scores["tone_error"] = round(float(np.abs(predicted[:, 1] - (1 - target / 255))[ink_of(target)].mean()), 4)
    return scores


def ink_measures(probability: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Ink precision, recall and F of P(ink) > 0.5 against the targets' ink, to 4 places."""
    return {k: round(v, 4) for k, v in mask_scores(probability > 0.5, ink_of(target)).items()}


# -- loop ----------------------------------------------------------------------------------


def check_fonts(config: dict) -> None:
    """Refuse to train on fewer fonts than the config was made with (`min_fonts`): the printed
    text would come from a few fonts, and the run would not re-make the model its card describes."""
    wanted = int(config.get("min_fonts", 0))
    found = len(overlays.font_files(config.get("fonts", "train")))
    if found < wanted:
        raise InputError(f"{config['name']} needs at least {wanted} fonts for its printed text, this machine has {found}; "
                         f"install Debian's {' '.join(overlays.FONT_PACKAGES)}")


def train_cleaner(config: dict, config_path: str) -> Path:
    if config.get("init") and not Path(config["init"]).is_file():  # before minutes of loading data
        raise InputError(f"init: {config['init']} is not a file here; "
                         + ("name a shipped cleaner's .onnx file" if str(config["init"]).endswith(".onnx") else "train the run it comes from first"))
    check_fonts(config)
    source_weights(config.get("data", []))
    near_clutter = near_clutter_weight(config)  # a bad weight is refused before the data loads
    torch.manual_seed(config.get("seed", 0))
    torch.set_num_threads(int(config.get("threads", 2)))
    cv2.setNumThreads(1)  # before the data worker forks: no OpenCV thread pool to inherit, none to fight the network
    run_dir = Path(config.get("run_dir", f"runs/{config['name']}"))
    with holding_run_dir(run_dir):
        sources = config.get("data", [])
        train = load_clean_signatures(sources, "train", run_dir / "train.npz") if sources else []
        holdout = load_clean_signatures(sources, "holdout", run_dir / "holdout.npz") if sources else []
        if not holdout:  # no data configured (tests): validate on procedural writers never drawn in training
            holdout = [synth.genuine(10_000_000 + i, 0) for i in range(8)]
        val_dirty, val_target = validation_pairs(holdout, config, int(config.get("validation_pairs", 96)))
        network = build_cleaner_network(config.get("network", {})).to(memory_format=torch.channels_last)
        from_onnx = str(config.get("init", "")).endswith(".onnx")
        if from_onnx:  # a shipped file's batch norms are folded into its convolutions: fold this network's to match
            fold_batch_norms(network)
        steps, warmup = int(config["steps"]), int(config.get("warmup", 50))
        optimizer, scheduler = optimizer_and_schedule(network, config, steps, warmup)
        checkpoint = run_dir / "last.pt"
        state = resume(checkpoint, network, optimizer, scheduler, steps, config=config)
        made_by = shaping(config)
        if not state and from_onnx:  # a new run fine-tuning a shipped model: its tone head (or crop-wide tone term) may be new
            sample = torch.rand(1, 1, 4 * MULTIPLE, 6 * MULTIPLE, generator=torch.Generator().manual_seed(0))
            heads = [network.tone, getattr(network, "tone_context", None)]
            load_onnx_weights(network, Path(config["init"]), sample, new=[m for m in heads if m is not None], exported=torch.sigmoid)
        elif not state and config.get("init"):  # a new run fine-tuning another run's chosen network
            # a tone head (or crop-wide tone term) may be new: only its weights may be missing from the other run's network
            try:
                # `frozen.*` only alias lite0's stem and blocks, so runs that froze other blocks still fit
                weights = {k: v for k, v in torch.load(config["init"], weights_only=False)["network"].items() if not k.startswith("frozen.")}
                missing, unexpected = network.load_state_dict(weights, strict=False)
            except RuntimeError as error:  # layers of other sizes
                raise InputError(f"init: {config['init']} holds a different network: {error}") from None
            if unexpected or any(not k.startswith(("tone.", "tone_context.", "frozen.")) for k in missing):
                raise InputError(f"init: {config['init']} holds a different network (missing {missing}, unexpected {unexpected})")
        start, seconds, best = state.get("step", 0), state.get("seconds", 0.0), state.get("best", -1.0)
        workers = int(config.get("workers", 1))
        weights = sampling_weights(sources, len(train), run_dir / "train.npz") if train else None
        loader = torch.utils.data.DataLoader(PairStream(train, config, int(config.get("seed", 0)) * 1000 + start, weights), batch_size=None,
                                             num_workers=workers, prefetch_factor=4 if workers else None, persistent_workers=False)
        autocast = config.get("autocast", "bf16") == "bf16"
        loss_config = config.get("loss", {})
        batches = iter(loader)
        with Progress(*progress_columns("training cleaner")) as progress, training_log(run_dir / "log.jsonl", start) as log:
            task = progress.add_task("train", total=steps, completed=start, status="")
            began, running = time.time(), None
            for step in range(start, steps):
                dirty, target = next(batches)
                x = as_input(dirty).contiguous(memory_format=torch.channels_last)
                y = ink_of(target).float()[:, None]
                network.train()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    logits = network(x)
                logits = logits.float()
                weights = near_clutter_weights(x, y, near_clutter) if near_clutter != 1 else None
                loss = ink_loss(logits[:, :1], y, loss_config.get("pos_weight", 2.0), loss_config.get("dice", 1.0), weights)
                if logits.shape[1] > 1:
                    loss = loss + float(loss_config.get("tone", 1.0)) * tone_loss(logits[:, 1:], as_input(target), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
                done = step + 1
                if done % int(config.get("eval_every", 200)) == 0 or done == steps:
                    scores = validate(network, val_dirty, val_target)
                    elapsed = seconds + time.time() - began
                    log.write(json.dumps({"step": done, "loss": round(running, 4), "validation": scores, "seconds": round(elapsed)}) + "\n")
                    log.flush()
                    if choice_score(scores) > best:
                        best = choice_score(scores)
                        save_atomically({"network": network.state_dict(), "step": done, "validation": scores}, run_dir / "best.pt")
                    save_checkpoint(checkpoint, network, optimizer, scheduler, step=done, seconds=elapsed, best=best, made_by=made_by)
                    progress.update(task, status=f"loss {running:.3f} val F {scores['f']:.3f} recall {scores['recall']:.3f}")
                progress.update(task, completed=done)
        seconds += time.time() - began
        chosen = torch.load(run_dir / "best.pt", weights_only=False)
        network.load_state_dict(chosen["network"])
        return export_cleaner(network, {**config, "chosen_step": chosen["step"], "validation": chosen["validation"]}, config_path, seconds, len(train))


def export_cleaner(network: nn.Module, config: dict, config_path: str, seconds: float, n_train: int) -> Path:
    """Write `<out>/<name>.onnx` (dynamic batch, height and width) and its model card."""
    path = Path(config["out"]) / f"{config['name']}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    size = (int(config["patch"]["height"]), int(config["patch"]["width"]))
    model = InkProbability(network.eval().float().to(memory_format=torch.contiguous_format)).eval()
    with torch.no_grad():
        torch.onnx.export(model, (torch.zeros(1, 1, *size),), str(path), input_names=["image"], output_names=["ink"],
                          dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "ink": {0: "batch", 2: "height", 3: "width"}},
                          opset_version=17, dynamo=False)
    fonts = overlays.font_files(config.get("fonts", "train"))
    card = {
        "name": config["name"],
        "kind": "cleaner",
        "description": config["description"],
        "network": {"kind": "unet", **config.get("network", {}), "parameters": sum(p.numel() for p in network.parameters())},
        "input": {"height": size[0], "width": size[1], "channels": 1, "dtype": "float32", "range": [0, 1],
                  "polarity": "ink bright on black (1 - grey / 255)", "sides": f"any multiple of {MULTIPLE} (training patch shown)",
                  "preprocessing": f"signver.cleaner: shrink to at most max_pixels, pad with white to a multiple of {MULTIPLE}"},
        "output": "probability that each pixel is signature ink, same size as the input"
                  + ("; channel 2: the darkness of the clean signature's ink there (0 paper, 1 black)" if config.get("network", {}).get("tone") else ""),
        "max_pixels": int(config.get("max_pixels", 65536)),
        "mask": config.get("mask", {"low": 0.3, "high": 0.7}),
        "trained_on": {"signatures": [{k: v for k, v in s.items()} for s in config.get("data", [])], "images": n_train,
                       "synthetic_fraction": config.get("synthetic_fraction", 0.1),
                       "overlays": "signver.overlays.clutter: printed text, paragraphs, rules, boxes, leaders, stamps, speckle; scan degradation",
                       "fonts": len(fonts), "held_out_font_families": list(overlays.HELD_OUT_FAMILIES),
                       "clean_fraction": config.get("clean_fraction", 0.15),
                       "hand_stroke_fraction": config.get("hand_stroke_fraction", 0.0),
                       "flourish_fraction": config.get("flourish_fraction", 0.0),
                       "fade_probability": config.get("fade_probability", 1.0), "init": config.get("init"),
                       "element_probabilities": config.get("elements", {})},  # overrides of signver.overlays' defaults
        "training": {"steps": config["steps"], "chosen_step": config["chosen_step"], "batch": config["batch"], "patch": config["patch"],
                     "lr": config["lr"], "loss": config.get("loss", {}), "seconds": round(seconds),
                     "machine": machine_name(), "date": date.today().isoformat()},
        "validation": {"pairs": int(config.get("validation_pairs", 96)), "writers": "held-out training writers", **config["validation"]},
        "threshold": None,
        "training_command": f"signver train cleaner --config {config_path}",
    }
    write_card(path.with_suffix(".json"), card)
    return path
