"""Build the Cython kernels of rcnn/cython (``make`` runs ``build_ext --inplace``)."""
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

KERNELS = ['anchors', 'bbox', 'cpu_nms', 'greedy_nms']
# greedy_nms repeats NumPy's float64 arithmetic term by term: no fused multiply-adds.
EXTRA_FLAGS = {'greedy_nms': ['-ffp-contract=off']}

setup(
    name='retinaface-mxnet',
    version='0.1.0',
    description='Faithful MXNet port of InsightFace RetinaFace (training, WIDER FACE testing and '
                'evaluation) and an MTCNN cascade built with the MXNet symbol API',
    python_requires='>=3.9',
    packages=find_packages(include=['rcnn', 'rcnn.*', 'mtcnn', 'mtcnn.*']),
    py_modules=['retinaface'],
    ext_modules=cythonize(
        [Extension('rcnn.cython.%s' % name, ['rcnn/cython/%s.pyx' % name],
                   extra_compile_args=['-O3'] + EXTRA_FLAGS.get(name, []))
         for name in KERNELS],
        compiler_directives={'language_level': 3},
    ),
    zip_safe=False,
)
