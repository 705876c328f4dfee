"""Apple laptops: `--device mps` is refused clearly where MPS is absent, and the graders never
need float64 on the student's device (MPS has no float64).

This machine has no MPS: `OnMPS` below is a CPU tensor that refuses float64 as an MPS tensor
does ("Cannot convert a MPS Tensor to float64 dtype"), so the graders meet what a Mac gives them.
"""
import pytest
import torch
import torch.nn as nn

from clead_edu import exercises, graders
from clead_edu.__main__ import main
from clead_edu.device import pick_device


class OnMPS(torch.Tensor):
    """A tensor that refuses float64 like one on Apple's MPS; `.cpu()` gives a plain tensor."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name == "double" or (name == "to" and torch.float64 in (*args[1:], *kwargs.values())):
            raise TypeError("Cannot convert a MPS Tensor to float64 dtype as the MPS framework doesn't support float64")
        if name == "cpu":
            with torch._C.DisableTorchFunctionSubclass():
                return args[0].clone()
        return super().__torch_function__(func, types, args, kwargs)


def on_mps(t: torch.Tensor) -> OnMPS:
    return t.as_subclass(OnMPS)


def test_the_stand_in_refuses_float64():
    """The stand-in does refuse float64, so the tests below can fail."""
    with pytest.raises(TypeError, match="MPS"):
        on_mps(torch.ones(2)).double()


def test_mps_is_refused_where_it_is_absent(monkeypatch):
    """pick_device('mps') without MPS: a ValueError that says what MPS needs and what to use."""
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"MPS is not available.*--device cpu"):
        pick_device("mps", verbose=False)


def test_mps_is_taken_where_it_is_present(monkeypatch):
    """With MPS present, --device mps gives the mps device (and auto picks it when no CUDA)."""
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("mps", verbose=False).type == "mps"
    assert pick_device(None, verbose=False).type == "mps"


def test_command_line_says_so(monkeypatch, capsys):
    """`run --device mps` without MPS stops with exit code 2 and the message."""
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert main(["run", "--device", "mps", "--epochs", "1"]) == 2
    assert "MPS is not available" in capsys.readouterr().err


def test_compare_and_check_value_take_tensors_from_the_students_device():
    """A right answer held on the device is accepted, a wrong one named, without float64 there."""
    x = torch.tensor([0.25, 0.5])
    assert exercises.check_value("t", on_mps(x.clone()), x, "hint") is True
    exercises.compare("t", on_mps(x.clone()), on_mps(x.clone()), {}, "hint")
    with pytest.raises(exercises.ExerciseError, match="flipped"):
        exercises.compare("t", on_mps(-x), x, {("flipped-sign", "flipped"): on_mps(-x)}, "hint")


def test_state_close_takes_models_on_the_students_device():
    """graders.state_close compares state dicts held on the device (moved to the CPU first)."""
    a, b = nn.Module(), nn.Module()
    a.register_buffer("w", on_mps(torch.ones(3)))
    b.register_buffer("w", on_mps(torch.ones(3)))
    assert graders.state_close(a, b)
    b.w.add_(1)
    assert not graders.state_close(a, b)


def test_a_grader_runs_a_student_function_that_answers_on_the_device():
    """The FGSM grader accepts a right FGSM (written here: the package's own is switched off while
    a student's answer is graded) returning its answer as a device tensor."""
    def fgsm_on_device(model, x, y, eps):
        was = model.training
        model.eval()
        x = x.clone().requires_grad_(True)
        grad, = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y), x)
        model.train(was)
        return on_mps((x + eps * grad.sign()).clamp(0, 1).detach())
    assert exercises.grade("fgsm", fgsm_on_device) is True
