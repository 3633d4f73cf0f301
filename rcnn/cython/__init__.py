"""Compiled numeric kernels (built in place by ``make`` or ``pip install -e .``)."""
