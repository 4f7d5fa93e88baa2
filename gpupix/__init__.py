"""gpupix: classical machine learning on pixels, batch by batch, on a GPU or the CPU.

Importing gpupix imports no GPU library and no Dask: those load only when a backend or
executor that needs them is chosen.
"""

__version__ = "0.1.0"
