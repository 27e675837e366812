"""Classification metrics on score matrices: top-k, mean class accuracy, confusion matrix.

All functions take ``scores`` of shape (N, K) (logits, probabilities or log-probabilities:
only the ranking matters) and integer ``labels`` of shape (N,). Video-level scores are
the mean of the per-time-step softmax scores (see :func:`video_scores`).
"""

from __future__ import annotations

import numpy as np


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def topk_accuracy(scores, labels, k: int = 1) -> float:
    """Share of rows whose label is among the k highest scores."""
    s, y = _np(scores), _np(labels).astype(int)
    if len(y) == 0:
        return float("nan")
    k = min(k, s.shape[1])
    topk = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return float((topk == y[:, None]).any(axis=1).mean())


def confusion_matrix(pred, labels, num_classes: int) -> np.ndarray:
    """(K, K) counts; row = true class, column = predicted class."""
    p, y = _np(pred).astype(int), _np(labels).astype(int)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y, p), 1)
    return cm


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall per class (NaN for classes absent from the labels)."""
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def mean_class_accuracy(cm: np.ndarray) -> float:
    """Mean of per-class recalls over the classes present (robust to class imbalance)."""
    acc = per_class_accuracy(cm)
    return float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan")


def classification_metrics(scores, labels, num_classes: int) -> dict:
    """top1, top5, mean_class_acc, confusion matrix and count, as one dict."""
    s, y = _np(scores), _np(labels).astype(int)
    pred = s.argmax(axis=1) if len(y) else np.zeros(0, dtype=int)
    cm = confusion_matrix(pred, y, num_classes)
    return {
        "top1": topk_accuracy(s, y, 1),
        "top5": topk_accuracy(s, y, 5),
        "mean_class_acc": mean_class_accuracy(cm),
        "confusion": cm,
        "n": int(len(y)),
    }


def video_scores(step_logits, video_index, num_videos: int) -> np.ndarray:
    """Average per-time-step softmax scores into per-video scores.

    step_logits: (N_steps, K) logits; video_index: (N_steps,) video id of each row.
    Returns (num_videos, K) mean softmax probabilities.
    """
    z = _np(step_logits).astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    idx = _np(video_index).astype(int)
    out = np.zeros((num_videos, p.shape[1]))
    counts = np.zeros(num_videos)
    np.add.at(out, idx, p)
    np.add.at(counts, idx, 1)
    return out / np.maximum(counts, 1)[:, None]
