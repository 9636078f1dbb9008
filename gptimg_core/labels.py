"""Class names of class-conditional models: a checkpoint's own list, or ImageNet's for 1000-class models."""

from __future__ import annotations

import difflib
import json
import os
import re
from functools import cache
from pathlib import Path

from safetensors import safe_open

IMAGENET_FILE = Path(__file__).resolve().parent / "data" / "imagenet_classes.txt"


@cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k names in class-id order (see data/README.md for their source)."""
    names = tuple(line.strip() for line in IMAGENET_FILE.read_text(encoding="utf-8").splitlines())
    if len(names) != 1000 or not all(names):
        raise RuntimeError(f"{IMAGENET_FILE} must hold 1000 non-empty lines, found {len(names)}")
    return names


def stored_class_names(path: str | os.PathLike) -> tuple[str, ...] | None:
    """The "class_names" JSON list in a safetensors file's metadata, or None (other files, or absent)."""
    p = Path(path)
    if p.suffix.lower() != ".safetensors":
        return None
    with safe_open(str(p), framework="pt", device="cpu") as f:  # reads the header only
        raw = (f.metadata() or {}).get("class_names")
    if raw is None:
        return None
    try:
        names = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"stored_class_names: {p.name}: metadata 'class_names' is not JSON ({e})") from e
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"stored_class_names: {p.name}: metadata 'class_names' must be a JSON list of strings")
    return tuple(names)


def class_names_for(num_classes: int, stored: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Names for a model's classes: the checkpoint's own when they fit, ImageNet's for 1000 classes, else None."""
    if stored is not None and len(stored) == num_classes:
        return stored
    if num_classes == 1000:
        return imagenet_class_names()
    return None


def resolve_class(text: str, names: tuple[str, ...] | None, num_classes: int, where: str = "resolve_class") -> int:
    """A class id from its number ("207") or its name ("golden retriever", any case) -> int in [0, num_classes)."""
    s = " ".join(str(text).split())
    if not s:
        raise ValueError(
            f"{where}: is empty; give a class id 0..{num_classes - 1}" + (" or a class name" if names else "")
        )
    if re.fullmatch(r"[+-]?\d+", s):  # "-1" is a number out of range, never a name
        i = int(s)
        if not 0 <= i < num_classes:
            raise ValueError(f"{where}: class id {i} is out of range; this model has classes 0..{num_classes - 1}")
        return i
    if names is None:
        raise ValueError(
            f"{where}: {s!r} is not a class id and this model has no class names; give a number 0..{num_classes - 1}"
        )
    key = s.lower()
    hits = [i for i, n in enumerate(names) if n.lower() == key]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise ValueError(f"{where}: {s!r} names several classes ({', '.join(map(str, hits))}); give the id instead")
    close = difflib.get_close_matches(key, [n.lower() for n in names], n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else f"; give an id 0..{num_classes - 1}"
    raise ValueError(f"{where}: unknown class name {s!r}{hint}")


__all__ = ["class_names_for", "imagenet_class_names", "resolve_class", "stored_class_names"]
