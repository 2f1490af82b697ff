"""Changed copies of the training images, so heads trained on fixed maps still see variety.

Heads train on maps computed once per image, so they cannot augment as a network does; they
may instead draw from copies whose maps are computed once too:

- stroke-width copies (`thin`, `thick`): the same hand leaves finer or broader strokes with
  another pen, scanner or resolution (BHSig260-Bengali writers 1-50 were scanned with strokes
  about 3.6 pixels wide, writers 51-100 and the Hindi writers about 5). Each raw scan is made a
  pixel finer or broader (a 2x2 grey dilation or erosion) before the one normalisation
  (docs/benchmarks.md, twentieth session);
- augmented copies (`augmented-<seed>`): the normalised images moved, turned, sheared, warped
  and re-toned as the network's training augments them (`augment.random_geometry`,
  `augment.random_scan`), seeded (docs/benchmarks.md, thirty-eighth session).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch

from ..errors import InputError

AUGMENTED = "augmented-"  # prefix of an augmented copy's name; its seed follows
_PIXEL = np.ones((2, 2), np.uint8)
CHANGES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "thin": lambda gray: cv2.dilate(gray, _PIXEL),  # ink is dark: the paper grows into it
    "thick": lambda gray: cv2.erode(gray, _PIXEL),
}


def changes_of(spec: dict) -> list[str]:
    """The copies a head spec trains on (`copies`): names in `CHANGES` or `augmented-<seed>`."""
    names = [str(name) for name in spec.get("copies", [])]
    unknown = sorted(n for n in set(names) if n not in CHANGES and augmented_seed(n) is None)
    if unknown:
        raise InputError(f"unknown copies {unknown}: choose from {sorted(CHANGES)} or {AUGMENTED}<seed>")
    return names


def augmented_seed(name: str) -> int | None:
    """The seed of an augmented copy's name (`augmented-7` -> 7), None for any other name."""
    digits = name[len(AUGMENTED):]
    return int(digits) if name.startswith(AUGMENTED) and digits.isdigit() else None


def augmented_copy(images: np.ndarray, seed: int, batch: int = 512) -> np.ndarray:
    """Normalised uint8 images as training augments them (geometry, then ink tone, blur and
    noise), drawn from `seed` without touching torch's global random state."""
    from .augment import random_geometry, random_scan

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        x = torch.from_numpy(images).float().div(255)[:, None]
        out = torch.cat([random_scan(random_geometry(x[i : i + batch])) for i in range(0, len(x), batch)])
    return (out[:, 0] * 255).round().clamp(0, 255).to(torch.uint8).numpy()


class MapCopies:
    """Maps of training images and of changed copies of them, image for image. Training draws
    one version of each image it uses: the original with `original_share`, else a copy."""

    def __init__(self, original: torch.Tensor, copies: list[torch.Tensor] = (), original_share: float = 1.0):
        if not 0 <= original_share <= 1:
            raise InputError(f"original_share must be between 0 and 1, got {original_share}")
        self.versions = [original, *copies]
        self.original_share = original_share

    @property
    def original(self) -> torch.Tensor:
        return self.versions[0]

    def subset(self, mask: np.ndarray) -> MapCopies:
        keep = torch.from_numpy(np.asarray(mask))
        return MapCopies(self.original[keep], [copy[keep] for copy in self.versions[1:]], self.original_share)

    def draw(self, index: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Maps of the images `index`, each from one version (no random draw without copies,
        so a head trained without them sees exactly what it did before copies existed)."""
        if len(self.versions) == 1:
            return self.original[index]
        version = np.where(rng.random(len(index)) < self.original_share, 0, rng.integers(1, len(self.versions), len(index)))
        out = torch.empty((len(index), *self.original.shape[1:]), dtype=self.original.dtype)
        for v in np.unique(version):
            chosen = np.flatnonzero(version == v)
            out[torch.from_numpy(chosen)] = self.versions[v][index[chosen]]
        return out


def drawer(maps: torch.Tensor | MapCopies, spec: dict) -> Callable[[np.ndarray], torch.Tensor]:
    """Maps of the images asked for, one version each, as head `spec` trains: a plain tensor is
    maps without copies. Versions are picked by a generator of their own, so a head's pairs or
    batches are drawn as they were before copies existed."""
    copies = maps if isinstance(maps, MapCopies) else MapCopies(maps)
    rng = np.random.default_rng(1000 + int(spec.get("seed", 0)))
    return lambda index: copies.draw(index, rng)


def training_maps(spec: dict, original: torch.Tensor, changed: dict[str, torch.Tensor]) -> MapCopies:
    """What a head `spec` trains on: the original maps and the copies it names from `changed`."""
    return MapCopies(original, [changed[name] for name in changes_of(spec)], float(spec.get("original_share", 1.0)))
