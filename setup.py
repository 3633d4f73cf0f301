"""Build the Cython kernels of rcnn/cython (``make`` runs ``build_ext --inplace``)."""
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

KERNELS = ['anchors', 'bbox', 'cpu_nms']

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
                   extra_compile_args=['-O3'])
         for name in KERNELS],
        compiler_directives={'language_level': 3},
    ),
    zip_safe=False,
)
