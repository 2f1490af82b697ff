"""Calibrated confidence: a distance turned into P(genuine) and a likelihood ratio.

A logistic map on the distance, fitted with genuine and impostor classes weighted equally, so
its logit is the natural log of the likelihood ratio LR = p(d | same writer) / p(d | impostor)
that forensic document examiners report; the probability is the posterior at equal priors.
A user with other priors multiplies the LR by their prior odds.

Impostors are skilled forgeries only. A bank's costly mistake is accepting a forger who has
practised the signature; random forgeries (someone else's own signature) lie far away and are
easy, and mixing them in would inflate the probability a mid-range distance gets, overstating
the confidence exactly where forgers land. Random forgeries still get low probabilities, since
the map only falls with distance; they are just not what sets it.

The LR is only as good as the pairs behind it: far outside the distances seen in fitting (a
few thousand pairs per class) it is an extrapolation, so |log10 LR| is bounded at
LOG10_LR_BOUND (and the probability with it), as forensic practice bounds reported LRs.

A claim against K enrolled references is scored by fusing K distances, and fused distances
are distributed differently from single pairs (the nearest of K references is nearer, for
forgers too). So a model card also carries `ClaimRules`: for each fusion and each K, its own
threshold and calibration, fitted the same way on the same held-out training writers.

Inference needs numpy only; fitting imports scikit-learn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from .errors import DatasetError

LN10 = float(np.log(10))
LOG10_LR_BOUND = 4.0


@dataclass(frozen=True)
class Calibration:
    """p_genuine = sigmoid(a + b * distance) at equal priors; b < 0 (closer = more genuine)."""

    a: float
    b: float
    impostors: str = "skilled"
    fitted_on: list = field(default_factory=list)
    n_genuine: int = 0
    n_impostor: int = 0

    def log_lr(self, distance: float | np.ndarray) -> float | np.ndarray:
        """Natural log likelihood ratio, same writer vs impostor."""
        bound = LOG10_LR_BOUND * LN10
        return np.clip(self.a + self.b * np.asarray(distance, np.float64), -bound, bound)

    def log10_lr(self, distance: float | np.ndarray) -> float | np.ndarray:
        return self.log_lr(distance) / LN10

    def probability(self, distance: float | np.ndarray) -> float | np.ndarray:
        """Probability that the pair is genuine, at equal priors (0 to 1)."""
        return 0.5 * (1 + np.tanh(self.log_lr(distance) / 2))  # the sigmoid, without overflow

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        """From a model card's `calibration`; keys it does not know (date, rule) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class ClaimRule:
    """Decision threshold and calibration for claims fused over one number of references."""

    threshold: float
    calibration: Calibration


@dataclass(frozen=True)
class ClaimRules:
    """Per fusion and per K: `rules[fusion][k]`. Claims with more references than fitted use
    the largest K fitted. The fitted thresholds fall slowly with K (lite0-heads, `scaled`: 0.74
    at K=2, 0.68 at K=12; `min`: 0.21 to 0.19), so a claim over many more references than that
    is judged a little leniently (the held-out writers' genuine signatures allow rules up to
    K=12, `signver.training.calibrate.MAX_REFERENCES`)."""

    rules: dict[str, dict[int, ClaimRule]]

    def get(self, fusion: str, references: int) -> ClaimRule | None:
        by_k = self.rules.get(fusion)
        if not by_k or references < 1:
            return None
        return by_k.get(references) or by_k[max(by_k)]

    @classmethod
    def from_dict(cls, data: dict) -> ClaimRules:
        return cls({fusion: {int(k): ClaimRule(float(rule["threshold"]), Calibration.from_dict(rule["calibration"]))
                             for k, rule in entry["by_references"].items()}
                    for fusion, entry in data.items() if isinstance(entry, dict) and "by_references" in entry})


def fit_calibration(genuine: np.ndarray, impostor: np.ndarray, impostors: str = "skilled", fitted_on: list | None = None) -> Calibration:
    """Unpenalised logistic regression of same-writer on distance, the two classes weighted
    equally so the intercept carries no prior from how many pairs of each kind there were."""
    from sklearn.linear_model import LogisticRegression  # fit time only: keeps inference light

    if not (len(genuine) and len(impostor)):
        raise DatasetError(f"a calibration needs both genuine and {impostors}-forgery trials, got {len(genuine)} genuine "
                           f"and {len(impostor)} {impostors}: do the writers it is fitted on have forgeries?")
    distances = np.r_[genuine, impostor].astype(np.float64)[:, None]
    labels = np.r_[np.ones(len(genuine)), np.zeros(len(impostor))]
    model = LogisticRegression(C=np.inf, class_weight="balanced", max_iter=1000).fit(distances, labels)
    return Calibration(
        a=float(model.intercept_[0]), b=float(model.coef_[0, 0]), impostors=impostors,
        fitted_on=list(fitted_on or []), n_genuine=len(genuine), n_impostor=len(impostor),
    )
