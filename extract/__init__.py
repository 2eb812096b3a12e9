"""vqa-extract: reproducible VideoQA feature extraction in the MASN layout.

Heavy dependencies (torch models, h5py, ray) are imported inside the functions that
need them so that ``extract --help`` stays instant.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
