"""The compiled tokenizer (calo_polars/parse/_tokenize.c); everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and the parse stage uses
its Polars path (calo_polars/parse/tokenize.py says which one runs).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "calo_polars.parse._tokenize",
            sources=["calo_polars/parse/_tokenize.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
