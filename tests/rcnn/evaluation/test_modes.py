"""rcnn.evaluation.modes: the scales and flips of test_widerface.py's modes, as the original's."""
import pytest

from rcnn.evaluation.modes import MODES, get_scales


@pytest.mark.parametrize('shape, expected', [
    ((768, 1024, 3), 1600 / 768),    # long side 2133.3 fits under 2150
    ((1024, 768), 1600 / 768),       # orientation does not matter
    ((500, 1500, 3), 2150 / 1500),   # long side would be 4800: capped
    ((800, 1075, 3), 2.0),           # long side exactly 2150 still fits
])
def test_mode0_single_scale(shape, expected):
    scales, do_flip = get_scales(shape, 0)
    assert scales == pytest.approx([expected], rel=1e-12)
    assert do_flip is False


@pytest.mark.parametrize('mode', [1, 2])
@pytest.mark.parametrize('shape, base', [
    ((768, 1024, 3), 800 / 768),     # long side 1066.7 fits under 1200
    ((500, 1500, 3), 1200 / 1500),   # long side would be 2400: capped
    ((640, 961, 3), 1200 / 961),     # 1201.25 rounds to 1201 > 1200: capped
    ((1600, 2401, 3), 0.5),          # 1200.5 rounds half to even (np.round) to 1200: fits
])
def test_pyramid_modes_scale_relative_to_base(mode, shape, base):
    scales, do_flip = get_scales(shape, mode)
    assert scales == pytest.approx([s / 800 * base for s in (500, 800, 1100, 1400, 1700)], rel=1e-12)
    assert do_flip is True


def test_vote_only_in_mode1():
    assert [MODES[m][1] for m in (0, 1, 2)] == [False, True, False]
