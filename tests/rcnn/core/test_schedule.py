"""RetinaFace's learning-rate schedule (``rcnn.core.schedule``): the original's step factors, in iterations."""
import pytest

from facekit.mx.schedule import StepScheduler
from rcnn.core.schedule import lr_steps


def test_three_steps_divide_by_ten_in_iterations():
    assert lr_steps([55, 68, 80], iters_per_epoch=100) == [(5500, 0.1), (6800, 0.1), (8000, 0.1)]


def test_five_steps_use_the_original_factors():
    assert [f for _, f in lr_steps([1, 2, 3, 4, 5], 10)] == [0.5, 0.5, 0.4, 0.1, 0.1]


def test_eight_steps_warm_up_then_decay():
    steps = lr_steps([1, 2, 3, 4, 5, 55, 68, 80], 10)
    assert [f for _, f in steps] == [1.5849] * 5 + [0.1] * 3
    scheduler = StepScheduler(0.001, steps)
    assert scheduler(9) == pytest.approx(0.001)
    assert scheduler(50) == pytest.approx(0.001 * 1.5849 ** 5)  # ten times the base rate
    assert scheduler(50) == pytest.approx(0.01, rel=1e-4)
    assert scheduler(800) == pytest.approx(0.01 * 1e-3, rel=1e-4)


def test_a_run_resumed_at_epoch_3_takes_the_rates_of_the_uninterrupted_one():
    steps = lr_steps([1, 2, 3, 4, 5, 55, 68, 80], 10)
    whole, resumed = StepScheduler(0.001, steps), StepScheduler(0.001, steps, offset=30)
    assert resumed(1) == whole(31) == pytest.approx(0.001 * 1.5849 ** 3)
    assert [resumed(k) for k in range(1, 800)] == [whole(30 + k) for k in range(1, 800)]


def test_unsorted_steps_are_rejected():
    with pytest.raises(ValueError, match='lr_step'):
        lr_steps([68, 55], 10)
