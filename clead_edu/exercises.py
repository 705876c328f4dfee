"""Self-checks for the notebooks' exercises that do not give the answer away.

    answer = None                       # the student replaces None by their answer
    ce.exercises.check("02.1", answer)  # says right or wrong (with a hint); silent on the answer

Short answers are stored as SHA-256 digests of their normalised text (lower case, letters
and digits only), so reading this file or the notebook does not reveal them; the worked
answers are in solutions/ (for instructors). `check_value` compares a student's tensor or
number with a reference the notebook computes.
"""
from __future__ import annotations

import hashlib
import re

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
