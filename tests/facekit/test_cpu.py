"""facekit.cpu.cpu_flags: the instruction-set flags of /proc/cpuinfo (x86 'flags', ARM 'Features')."""
from facekit.cpu import cpu_flags


def test_flags_of_the_first_cpu(tmp_path):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('processor\t: 0\nflags\t\t: fpu sse4_1 avx512_vnni\n\nprocessor\t: 1\nflags\t\t: fpu\n')
    assert cpu_flags(str(cpuinfo)) == {'fpu', 'sse4_1', 'avx512_vnni'}
    cpuinfo.write_text('processor\t: 0\nFeatures\t: fp asimd asimddp\n')
    assert cpu_flags(str(cpuinfo)) == {'fp', 'asimd', 'asimddp'}


def test_unknown_flags_are_none(tmp_path):
    assert cpu_flags(str(tmp_path / 'missing')) == set()
    (tmp_path / 'empty').write_text('')
    assert cpu_flags(str(tmp_path / 'empty')) == set()
