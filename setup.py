"""Build the Cython kernels of facekit/cython and rcnn/cython (``make`` runs ``build_ext --inplace``)."""
from Cython.Build import cythonize
from setuptools import Extension, setup

KERNELS = {'facekit.cython': ['bbox', 'cpu_nms', 'greedy_nms'], 'rcnn.cython': ['anchors']}
# greedy_nms repeats NumPy's float64 arithmetic term by term: no fused multiply-adds.
EXTRA_FLAGS = {'greedy_nms': ['-ffp-contract=off']}

setup(
    ext_modules=cythonize(
        [Extension('%s.%s' % (package, name), ['%s/%s.pyx' % (package.replace('.', '/'), name)],
                   extra_compile_args=['-O3'] + EXTRA_FLAGS.get(name, []))
         for package, names in KERNELS.items() for name in names],
        compiler_directives={'language_level': 3},
    ),
)
