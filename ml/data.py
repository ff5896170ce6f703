"""Data set listing, duplicate grouping and grouped splits.

A data set is either a directory with ``yes/`` (tumor) and ``no/`` (no tumor) sub-folders,
or a CSV file of ``path,label`` rows (label: 1/0, yes/no, tumor/no_tumor; relative paths
are resolved against the CSV's folder). Files are grouped before any split:

* byte-identical files share their SHA-256;
* near-identical re-encodings (resized, re-compressed, converted to PNG ...) share a
  perceptual hash: a 64-bit difference hash (dHash) of the brain-cropped greyscale image,
  joined when at most ``NEAR_DUP_BITS`` bits differ and their 32x32 thumbnails correlate at
  ``NEAR_DUP_CORR`` or more, or the thumbnails correlate at ``SIMILAR_CORR`` with at most
  ``SIMILAR_BITS`` bits apart.

Groups are connected components, so twins never end up on both sides of a split.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Sample", "Dataset", "load_dataset", "group_samples", "grouped_kfold", "grouped_holdout",
           "dhash", "NEAR_DUP_BITS"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".jpe"}
# Tuned on the shared set: true re-encodings have dHash distance <= 2 and thumbnail
# correlation >= 0.94 or correlation >= 0.96 at distance <= 8; the closest distinct scans
# (even of opposite labels) correlate at about 0.90-0.91.
NEAR_DUP_BITS = 2
NEAR_DUP_CORR = 0.93
SIMILAR_BITS = 8
SIMILAR_CORR = 0.96
_LABELS = {"1": 1, "yes": 1, "tumor": 1, "tumour": 1, "true": 1, "positive": 1,
           "0": 0, "no": 0, "no_tumor": 0, "notumor": 0, "no tumor": 0, "false": 0, "negative": 0}


@dataclass
class Sample:
    path: Path
    label: int  # 1 = tumor, 0 = no tumor
    sha256: str = ""
    group: int = -1


@dataclass
class Dataset:
    root: Path
    samples: list[Sample] = field(default_factory=list)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    @property
    def groups(self) -> np.ndarray:
        return np.array([s.group for s in self.samples], dtype=np.int64)

    def fingerprint(self) -> str:
        """SHA-256 over the sorted (content hash, label) pairs: independent of paths and order."""
        h = hashlib.sha256()
        for sha, label in sorted((s.sha256, s.label) for s in self.samples):
            h.update(f"{sha}:{label}\n".encode())
        return h.hexdigest()

    def summary(self) -> dict:
        y = self.labels
        g = self.groups
        return {"files": len(self.samples), "tumor": int(y.sum()), "no_tumor": int((y == 0).sum()),
                "distinct_contents": len({s.sha256 for s in self.samples}),
                "groups": int(len(set(g.tolist()))) if len(g) else 0, "fingerprint": self.fingerprint()}


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _parse_label(value: str) -> int:
    key = str(value).strip().lower()
    if key not in _LABELS:
        raise ValueError(f"unknown label {value!r} (use 1/0, yes/no or tumor/no_tumor)")
    return _LABELS[key]


def load_dataset(source, *, group: bool = True) -> Dataset:
    src = Path(source)
    samples: list[Sample] = []
    if src.is_dir():
        yes, no = src / "yes", src / "no"
        if not (yes.is_dir() and no.is_dir()):
            raise ValueError(f"{src} must hold yes/ and no/ folders (or pass a CSV of path,label)")
        for folder, label in ((no, 0), (yes, 1)):
            for p in sorted(folder.iterdir()):
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                    samples.append(Sample(p, label))
        root = src
    elif src.is_file():
        root = src.parent
        with open(src, newline="") as fh:
            rows = list(csv.reader(fh))
        if rows and rows[0] and rows[0][0].strip().lower() in ("path", "file", "filename", "image"):
            rows = rows[1:]
        for i, row in enumerate(rows, 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                raise ValueError(f"{src}: row {i} needs path,label")
            p = Path(row[0].strip())
            p = p if p.is_absolute() else root / p
            if not p.is_file():
                raise ValueError(f"{src}: row {i}: file not found: {p}")
            samples.append(Sample(p, _parse_label(row[1])))
    else:
        raise ValueError(f"data set not found: {src}")
    if not samples:
        raise ValueError(f"no images found in {src}")
    for s in samples:
        s.sha256 = _sha256_file(s.path)
    ds = Dataset(root, samples)
    if group:
        group_samples(ds)
    return ds


def dhash(image, bits: int = 8) -> tuple[int, np.ndarray]:
    """(64-bit difference hash, 32x32 normalised thumbnail) of the brain-cropped greyscale image."""
    from PIL import Image

    from .crop import brain_crop

    g = brain_crop(image.convert("RGB")).convert("L")
    small = np.asarray(g.resize((bits + 1, bits), Image.BILINEAR), dtype=np.float32)
    diff = (small[:, 1:] > small[:, :-1]).ravel()
    value = 0
    for b in diff:
        value = (value << 1) | int(b)
    thumb = np.asarray(g.resize((32, 32), Image.BILINEAR), dtype=np.float32).ravel()
    thumb = thumb - thumb.mean()
    n = np.linalg.norm(thumb)
    return value, (thumb / n if n > 0 else thumb)


def _popcount(x: int) -> int:
    return bin(x).count("1")


def group_samples(ds: Dataset, max_bits: int = NEAR_DUP_BITS, min_corr: float = NEAR_DUP_CORR) -> None:
    """Assign ``Sample.group``: union of byte-identical and near-identical files."""
    from .intake import ImageRejected, decode_image

    n = len(ds.samples)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i, j):
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    first_by_sha: dict[str, int] = {}
    for i, s in enumerate(ds.samples):
        if s.sha256 in first_by_sha:
            union(i, first_by_sha[s.sha256])
        else:
            first_by_sha[s.sha256] = i
    hashes: list[tuple[int, np.ndarray] | None] = []
    for s in ds.samples:
        try:
            hashes.append(dhash(decode_image(s.path.read_bytes()).image))
        except (ImageRejected, OSError):
            hashes.append(None)
    for i in range(n):
        if hashes[i] is None:
            continue
        for j in range(i + 1, n):
            if hashes[j] is None:
                continue
            bits = _popcount(hashes[i][0] ^ hashes[j][0])
            if bits > SIMILAR_BITS:
                continue
            corr = float(hashes[i][1] @ hashes[j][1])
            if (bits <= max_bits and corr >= min_corr) or corr >= SIMILAR_CORR:
                union(i, j)
    roots: dict[int, int] = {}
    for i, s in enumerate(ds.samples):
        s.group = roots.setdefault(find(i), len(roots))


def grouped_kfold(labels, groups, n_splits: int = 5, seed: int = 0):
    """Stratified, grouped K-fold: list of (train_idx, test_idx)."""
    from sklearn.model_selection import StratifiedGroupKFold

    labels = np.asarray(labels)
    groups = np.asarray(groups)
    skf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in skf.split(np.zeros(len(labels)), labels, groups)]


def grouped_holdout(labels, groups, fraction: float = 0.2, seed: int = 0):
    """One grouped, stratified split: (train_idx, holdout_idx) with about ``fraction`` held out."""
    k = max(2, int(round(1.0 / fraction)))
    return grouped_kfold(labels, groups, n_splits=k, seed=seed)[0]
