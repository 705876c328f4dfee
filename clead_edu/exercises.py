"""Self-checks and graded code exercises for the notebooks.

    answer = None                       # the student replaces None by their answer
    ce.exercises.check("02.1", answer)  # self-check, not graded: right or wrong, with a hint

    def my_fgsm(model, x, y, eps):
        ...                             # a code exercise: the student writes the body
    ce.exercises.grade("fgsm", my_fgsm) # "right!", or ExerciseError saying what is wrong

Short answers are **self-checks, not graded**: each question prints its few options, so an
answer could be found by trying them all; they are stored here in plain text (normalised: lower
case, letters and digits only) and only tell the reader whether their reasoning holds. What is
graded are the code exercises: `grade` runs a code exercise's grader (`graders.py`, registered in
GRADERS by key) and raises on a wrong answer; `result` runs the same grader without raising and
returns a `Result` (the named mistake, the message and its points in a table such as `course/points.csv`),
which is what `python -m clead_edu grade` records. `check_value` compares a student's tensor or
number with a reference the notebook computes. The tools the graders share are at the end.
"""
from __future__ import annotations

import importlib
import re
from contextlib import contextmanager
from dataclasses import dataclass

import torch


def zero_inside(differences) -> set[str]:
    """{'yes'} if 0 lies in the 95% Student-t interval of paired per-seed differences (a list of
    fractions, one per seed), else {'no'}: the answer of 08.1 for whichever study the lesson showed."""
    from .report import interval
    mean, half = interval(differences)
    return {"yes" if mean - half <= 0 <= mean + half else "no"}


# key: (accepted answers, normalised, or a function of the data the lesson showed that gives them;
# hint shown after a wrong answer). Self-checks, not graded.
ANSWERS = {
    "01.1": ({"valueerror"},
             "run the call in a cell of your own and read the first word of what it prints."),
    "02.1": ({"fgsm"},
             "start from delta = 0, take one step of size eps along grad.sign(), then clip: "
             "which attack of section 2 does exactly that?"),
    "04.1": ({"up"},
             "at 10 degrees the negative is more similar to the anchor than the twin is; "
             "what happens to its share of p, and so to the positives' share?"),
    "04.2": ({"equal"},
             "with one image per class, which views share the anchor's label?"),
    "05.1": ({"pgdat", "madry"},
             "with lam = 0 only CE(f(x_adv), y) is left, on PGD examples: which objective "
             "of notebook 03 is that?"),
    "08.1": (zero_inside,
             "the interval runs from mean - half to mean + half of the worst-case row; "
             "answer yes or no: is 0 between the two ends?"),
}


def normalise(text) -> str:
    """'PGD-AT ' -> 'pgdat': lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def check(key: str, answer, data=None) -> bool | None:
    """Self-check (not graded): print whether `answer` is right for question `key` ('02.1'), with a
    hint if it is not. Returns True/False, or None (and a reminder) while the answer is still None or '...'.
    A question about the data the lesson showed (its accepted answers a function, e.g. 08.1) takes
    that data as `data` and is right or wrong for it, whether it was shipped or the student's own."""
    accepted, hint = ANSWERS[key]
    if callable(accepted):
        if data is None:
            raise TypeError(f"self-check {key} is about the data the lesson showed: "
                            f"check({key!r}, answer, data) with the data the question names")
        accepted = accepted(data)
    if answer is None or answer is Ellipsis or normalise(answer) == "":
        print(f"self-check {key}: write your answer first (replace None), then run this cell again.")
        return None
    ok = normalise(answer) in accepted
    print(f"self-check {key} (not graded): {'right!' if ok else 'not quite. Hint: ' + hint}")
    return ok


def cpu64(value) -> torch.Tensor:
    """`value` (a tensor on any device, a number, a list) as a detached float64 CPU tensor: moved
    to the CPU first, since Apple's MPS (the GPU of a Mac) has no float64."""
    return torch.as_tensor(value).detach().cpu().double()


def check_value(key: str, answer, reference, hint: str, atol: float = 1e-6) -> bool | None:
    """Compare a student's tensor/number with `reference` (same shape, equal up to atol)."""
    if answer is None or answer is Ellipsis:
        print(f"exercise {key}: compute your answer first (replace None), then run this cell again.")
        return None
    a, r = cpu64(answer), cpu64(reference)
    ok = a.shape == r.shape and torch.allclose(a, r, atol=atol)
    print(f"exercise {key}: {'right!' if ok else 'not quite. Hint: ' + hint}")
    return ok


# ----------------------------------------------------------------------------- code exercises

GRADERS: dict = {}          # key -> grader(answer), filled by graders.py when first needed
EXERCISES: dict = {}        # key -> Exercise, filled by graders.py


@dataclass(frozen=True)
class Exercise:
    """A code exercise: its lesson ('02'), the function the student writes ('my_fgsm'), and the
    package's functions that are switched off while the student's function runs."""
    key: str
    lesson: str
    function: str
    forbid: tuple = ()


@dataclass
class Result:
    """The outcome of one code exercise: mistake is '' when passed, else the grader's name for
    it ('no-clamp', 'not-written', 'error', ...); points from the instructor's table (course/points.csv)."""
    exercise: str
    passed: bool
    mistake: str
    message: str
    points: float
    max_points: float


def grade(key: str, answer) -> bool:
    """Grade the code exercise `key` ('fgsm', see GRADERS) on the student's function `answer`:
    prints 'right!' and returns True, or raises ExerciseError (NotWrittenYet while the body is `...`)."""
    importlib.import_module(f"{__package__}.graders")   # registers the graders (once; cached after)
    if key not in GRADERS:
        raise KeyError(f"no code exercise {key!r}; there are {', '.join(sorted(GRADERS))}")
    GRADERS[key](answer)
    return True


def result(key: str, answer, table: dict) -> Result:
    """Grade like `grade`, without raising or printing: the named mistake (an exception raised by
    the student's function is mistake 'error') and its points in `table` {(exercise, mistake or
    'right'): points} (`course.points.load()` reads the instructor's points.csv)."""
    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            grade(key, answer)
    except ExerciseError as err:
        mistake, message = err.mistake, str(err)
    except Exception as err:                           # the student's code raised
        mistake, message = "error", f"exercise {key}: your function raised {type(err).__name__}: {err}"
    else:
        mistake, message = "", f"exercise {key}: right!"
    return Result(key, mistake == "", mistake, message, score(table, key, mistake), score(table, key, ""))


def score(table: dict, exercise: str, mistake: str) -> float:
    """The points for `exercise` graded with `mistake` ('' = right): full marks, the partial
    credit listed for the mistake, or 0. An exercise missing from the table scores 0 of 0."""
    return table.get((exercise, mistake or "right"), 0.0)


class ExerciseError(Exception):
    """A code exercise that is wrong (or not written yet): Jupyter shows the message only.
    `mistake` names what the grader recognised ('wrong' when it is none it knows)."""

    def __init__(self, message: str, mistake: str = "wrong"):
        super().__init__(message)
        self.mistake = mistake

    def _render_traceback_(self):          # IPython prints this instead of a traceback
        return [f"{type(self).__name__}: {self}"]


class NotWrittenYet(ExerciseError):
    """The exercise's function still returns None (its body is `...`)."""

    def __init__(self, message: str):
        super().__init__(message, "not-written")


class UsedPackage(ExerciseError):
    """The student's function called the package function the exercise asks them to write."""

    def __init__(self, message: str):
        super().__init__(message, "package-function")


def grader(key: str, lesson: str, function: str, forbid: tuple = ()):
    """Register `fn(answer) -> None` (raises ExerciseError) as the grader of exercise `key`, which
    lesson `lesson` asks for as `function`; `forbid`: the package's functions it asks to write."""
    def register(fn):
        GRADERS[key] = fn
        EXERCISES[key] = Exercise(key, lesson, function, tuple(forbid))
        return fn
    return register


def call(key: str, answer, *args):
    """answer(*args), with the exercise's forbidden package functions switched off meanwhile."""
    with switched_off(key, EXERCISES[key].forbid, answer):
        return answer(*args)


def shown_name(f) -> str:
    """'ce.attacks.fgsm' for clead_edu.attacks.fgsm, 'F.cross_entropy' for torch's functions."""
    module = str(getattr(f, "__module__", None) or "torch")
    return f"{module.replace('clead_edu', 'ce')}.{f.__name__}" if module.startswith("clead_edu") else f"F.{f.__name__}"


@contextmanager
def switched_off(key: str, functions: tuple, answer):
    """Inside the block every name bound to one of `functions` (in clead_edu's modules,
    torch.nn.functional and the globals of the student's function `answer`) raises UsedPackage;
    the names are restored afterwards, also when the block raises."""
    import sys

    def refusal(f):
        def refuse(*args, **kwargs):
            raise UsedPackage(f"exercise {key}: write it yourself: {shown_name(f)} is switched off while "
                              f"your {EXERCISES[key].function} is checked")
        return refuse

    spaces = [vars(m) for n, m in list(sys.modules.items())
              if m is not None and (n == "clead_edu" or n.startswith("clead_edu.") or n == "torch.nn.functional")]
    spaces += [answer.__globals__] if isinstance(getattr(answer, "__globals__", None), dict) else []
    patched = []
    for space in spaces:
        for name, value in list(space.items()):
            if any(value is f for f in functions):
                patched.append((space, name, value))
                space[name] = refusal(value)
    try:
        yield
    finally:
        for space, name, value in reversed(patched):
            space[name] = value


@contextmanager
def fixed_seed(seed: int = 0):
    """Seed torch's CPU generator inside the block; the caller's random state is restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def fail(key: str, what: str, hint: str = "", mistake: str = "wrong") -> None:
    """Raise ExerciseError named `mistake`: what is wrong, then the hint."""
    end = "" if what.endswith(("?", ".")) else "."
    raise ExerciseError(f"exercise {key}: not quite: {what}{end}" + (f" Hint: {hint}" if hint else ""), mistake)


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
             + ("a single number" if want is None else str(tuple(want))), "check which axis you reduce over", "shape")
    return t.reshape(()) if want is None else t


def compare(key: str, out: torch.Tensor, ref, mistakes: dict, hint: str, atol: float = 1e-5) -> None:
    """Return if out equals ref (up to atol); else fail naming the first known mistake it equals.
    mistakes: {(name, message): the wrong result}, or a list of such pairs (a name may recur)."""
    out = cpu64(out)
    if torch.allclose(out, cpu64(torch.as_tensor(ref)), atol=atol):
        return
    for (name, message), wrong in (mistakes.items() if isinstance(mistakes, dict) else mistakes):
        wrong = cpu64(torch.as_tensor(wrong).detach())
        if wrong.shape == out.shape and torch.allclose(out, wrong, atol=atol):
            fail(key, message, hint, name)
    fail(key, "the result differs from the package's", hint)


def passed(key: str) -> None:
    print(f"exercise {key}: right! It agrees with the package's own implementation.")


def needs_grad(key: str, out, want: bool, name: str) -> None:
    """A result that must (want=True: a loss) or must not (an adversarial image) carry a graph."""
    has = isinstance(out, torch.Tensor) and out.requires_grad
    if has and not want:
        fail(key, f"{name} still carries the autograd graph", "return it .detach()ed", "no-detach")
    if want and not has:
        fail(key, f"{name} carries no gradient, so nothing could be trained with it",
             "return the loss tensor itself: no .item(), no .detach(), no torch.no_grad()", "no-gradient")


