"""Argument checks shared by every public function, so that generate, inpaint, outpaint, variations and
img2img refuse the same mistakes with the same words: bools passed as numbers, floats where integers are
meant, non-finite numbers and tensors. Each raises TypeError (wrong type) or ValueError (bad value)
naming `where` (the function) and the argument."""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor


def _bounds(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    return f" <= {maximum}" if maximum is not None else ""


def check_int(
    where: str, name: str, value: object, minimum: int | None = None, maximum: int | None = None, hint: str = ""
) -> int:
    """An int (not a bool, not a float such as 2.0 or 2.5) within [minimum, maximum] -> that int.
    `hint` (e.g. " (0 = off)") follows the requirement in the message."""
    want = f"{where}: {name} must be an integer{_bounds(minimum, maximum)}{hint}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{want}, got {type(value).__name__} {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{want}, got {value}")
    return value


def check_float(
    where: str, name: str, value: object, minimum: float | None = None, maximum: float | None = None, hint: str = ""
) -> float:
    """A finite real number (int or float, not a bool, not a string) within [minimum, maximum] -> float."""
    want = f"{where}: {name} must be a finite number{_bounds(minimum, maximum)}{hint}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{want}, got {type(value).__name__} {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an int too large for a float
        value = math.inf
    if (
        not math.isfinite(value)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        raise ValueError(f"{want}, got {value}")
    return value


def check_choice(where: str, name: str, value: object, choices: tuple[str, ...]) -> str:
    """One of the strings in `choices`."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{where}: {name} must be one of {list(choices)}, got {value!r}")
    return value


def all_finite(t: Tensor) -> bool:
    """All values finite. A sum carries any NaN/inf through at ~1/30 of isfinite(t).all()'s cost (measured on
    the built-in GPT's weights); only a sum that overflows from finite values needs the exact pass."""
    return bool(torch.isfinite(t.sum(dtype=torch.float32))) or bool(torch.isfinite(t).all())


def check_finite(where: str, name: str, x: Tensor) -> None:
    """Refuse a floating tensor holding NaN or +-inf, saying how many values are bad."""
    if x.is_floating_point() and x.numel() and not all_finite(x):
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise ValueError(f"{where}: {name} holds {bad} non-finite values (NaN or inf) of {x.numel()}")


def check_callables(where: str, generator: object, callback: object = None) -> None:
    """generator: None, a torch.Generator or a list of them (one per image); callback: None or callable."""
    gens = generator if isinstance(generator, (list, tuple)) else [generator]
    if not gens or not all(g is None or isinstance(g, torch.Generator) for g in gens):
        raise TypeError(
            f"{where}: generator must be a torch.Generator, a list of them (one per image) or None, "
            f"got {type(generator).__name__}"
        )
    if callback is not None and not callable(callback):
        raise TypeError(f"{where}: callback must be callable or None, got {type(callback).__name__}")


def check_model(model: object, where: str) -> None:
    """A model of the TokenModel interface (what load_gpt returns)."""
    from .token_model import TokenModel  # token_model needs nothing from here; imported late to stay light

    if not isinstance(model, TokenModel):
        raise TypeError(f"{where}: gpt must be an image-token model (load_gpt's result), got {type(model).__name__}")


__all__ = ["all_finite", "check_choice", "check_finite", "check_float", "check_callables", "check_int", "check_model"]
