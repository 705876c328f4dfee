"""Self-checks for the notebooks' exercises that do not give the answer away.

    answer = None                       # the student replaces None by their answer
    ce.exercises.check("02.1", answer)  # says right or wrong (with a hint); silent on the answer

    def my_fgsm(model, x, y, eps):
        ...                             # a code exercise: the student writes the body
    ce.exercises.grade("fgsm", my_fgsm) # "right!", or ExerciseError saying what is wrong

Short answers are stored as SHA-256 digests of their normalised text (lower case, letters
and digits only), so reading this file or the notebook does not reveal them; the worked
answers are in solutions/ (for instructors). `check_value` compares a student's tensor or
number with a reference the notebook computes. `grade` runs a code exercise's grader
(`graders.py`, registered in GRADERS by key); the tools the graders share are at the end.
"""
from __future__ import annotations

import hashlib
import importlib
import re
from contextlib import contextmanager

import torch

# key: (accepted answers as sha256 of normalise(text), hint shown after a wrong answer)
ANSWERS = {
    "01.1": ({"a50aba76697ec0b5e64a25dbb4cde18efcbdca0fc761587a4faf6ea54461a78e"},
             "run the call in a cell of your own and read the first word of what it prints."),
    "02.1": ({"0803943eb2beae79b08298d94cdeabf6623ec58886b5cc68409b713619e3c89c"},
             "start from delta = 0, take one step of size eps along grad.sign(), then clip: "
             "which attack of section 2 does exactly that?"),
    "04.1": ({"75a288c0d6898c5f7b054590845978a82a3ad79fcce3d43ff68a7501e5a91ee9"},
             "at 10 degrees the negative is more similar to the anchor than the twin is; "
             "what happens to its share of p, and so to the positives' share?"),
    "04.2": ({"f9d6cd1ed5cf1ead7b54873537748e0daa8f1390cd61555b68089fca063444f3"},
             "with one image per class, which views share the anchor's label?"),
    "05.1": ({"9c1be8cd4b33786eb00738b8db26f5a4dc3f2b798c3347bc9a3e6641cb8783cf",
              "6e09b8baa1512d2c3479d91bb2858daf42e193d93db468df90c96061ba438368",
              "bcc7636e050fb1570de4f3eb7963b5773ecee0871a436dfdf2cd4cb9e4667b36"},
             "with lam = 0 only CE(f(x_adv), y) is left, on PGD examples: which objective "
             "of notebook 03 is that?"),
    "08.1": ({"8a798890fe93817163b10b5f7bd2ca4d25d84c52739a645a889c173eee7d9d3d"},
             "the interval runs from mean - half to mean + half of the worst-case row; "
             "answer yes or no: is 0 between the two ends?"),
}


def normalise(text) -> str:
    """'PGD-AT ' -> 'pgdat': lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def digest(text) -> str:
    """The SHA-256 of the normalised answer, as stored in ANSWERS."""
    return hashlib.sha256(normalise(text).encode()).hexdigest()


def check(key: str, answer) -> bool | None:
    """Print whether `answer` is right for exercise `key` ('02.1'); a hint if it is wrong.
    Returns True/False, or None (and a reminder) while the answer is still None or '...'."""
    accepted, hint = ANSWERS[key]
    if answer is None or answer is Ellipsis or normalise(answer) == "":
        print(f"exercise {key}: write your answer first (replace None), then run this cell again.")
        return None
    ok = digest(answer) in accepted
    print(f"exercise {key}: {'right!' if ok else 'not quite. Hint: ' + hint}")
    return ok


def check_value(key: str, answer, reference, hint: str, atol: float = 1e-6) -> bool | None:
    """Compare a student's tensor/number with `reference` (same shape, equal up to atol)."""
    if answer is None or answer is Ellipsis:
        print(f"exercise {key}: compute your answer first (replace None), then run this cell again.")
        return None
    a, r = torch.as_tensor(answer), torch.as_tensor(reference)
    ok = a.shape == r.shape and torch.allclose(a.double(), r.double(), atol=atol)
    print(f"exercise {key}: {'right!' if ok else 'not quite. Hint: ' + hint}")
    return ok


# ----------------------------------------------------------------------------- code exercises

GRADERS: dict = {}          # key -> grader(answer), filled by graders.py when `grade` first runs


def grade(key: str, answer) -> bool:
    """Grade the code exercise `key` ('fgsm', see GRADERS) on the student's function `answer`:
    prints 'right!' and returns True, or raises ExerciseError (NotWrittenYet while the body is `...`)."""
    importlib.import_module(f"{__package__}.graders")   # registers the graders (once; cached after)
    if key not in GRADERS:
        raise KeyError(f"no code exercise {key!r}; there are {', '.join(sorted(GRADERS))}")
    GRADERS[key](answer)
    return True


class ExerciseError(Exception):
    """A code exercise that is wrong (or not written yet): Jupyter shows the message only."""

    def _render_traceback_(self):          # IPython prints this instead of a traceback
        return [f"{type(self).__name__}: {self}"]


class NotWrittenYet(ExerciseError):
    """The exercise's function still returns None (its body is `...`)."""


def grader(key: str):
    """Register `fn(answer) -> None` (raises ExerciseError) as the grader of exercise `key`."""
    def register(fn):
        GRADERS[key] = fn
        return fn
    return register


@contextmanager
def fixed_seed(seed: int = 0):
    """Seed torch's CPU generator inside the block; the caller's random state is restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def fail(key: str, what: str, hint: str = "") -> None:
    """Raise ExerciseError: what is wrong, then the hint."""
    end = "" if what.endswith(("?", ".")) else "."
    raise ExerciseError(f"exercise {key}: not quite: {what}{end}" + (f" Hint: {hint}" if hint else ""))


def check_written(key: str, out, name: str) -> None:
    """NotWrittenYet when the student's function returned None or ... (its body is still `...`)."""
    if out is None or out is Ellipsis:
        raise NotWrittenYet(f"exercise {key}: not written yet: replace the ... in {name} by your code, "
                            "then run this cell again.")


def as_tensor(key: str, out, shape=None) -> torch.Tensor:
    """out as a detached CPU tensor, after checking its shape (None: a single number)."""
    if isinstance(out, tuple):
        out = out[0]
    t = torch.as_tensor(out).detach().cpu()
    want = torch.Size(shape) if shape is not None else None
    if (want is None and t.numel() != 1) or (want is not None and t.shape != want):
        fail(key, f"the result has shape {tuple(t.shape)}, expected "
             + ("a single number" if want is None else str(tuple(want))), "check which axis you reduce over")
    return t.reshape(()) if want is None else t


def compare(key: str, out: torch.Tensor, ref, mistakes: dict, hint: str, atol: float = 1e-5) -> None:
    """Return if out equals ref (up to atol); else fail naming the first known mistake it equals."""
    if torch.allclose(out.double(), torch.as_tensor(ref).double(), atol=atol):
        return
    for message, wrong in mistakes.items():
        wrong = torch.as_tensor(wrong).detach().double()
        if wrong.shape == out.shape and torch.allclose(out.double(), wrong, atol=atol):
            fail(key, message, hint)
    fail(key, "the result differs from the package's", hint)


def passed(key: str) -> None:
    print(f"exercise {key}: right! It agrees with the package's own implementation.")


def needs_grad(key: str, out, want: bool, name: str) -> None:
    """A result that must (want=True: a loss) or must not (an adversarial image) carry a graph."""
    has = isinstance(out, torch.Tensor) and out.requires_grad
    if has and not want:
        fail(key, f"{name} still carries the autograd graph", "return it .detach()ed")
    if want and not has:
        fail(key, f"{name} carries no gradient, so nothing could be trained with it",
             "return the loss tensor itself: no .item(), no .detach(), no torch.no_grad()")


