"""mrrp: multimodal recurrence-risk prediction for HR+/HER2- early breast cancer.

Importing the package is cheap on purpose: torch, openslide and h5py are imported
lazily by the sub-modules that need them.
"""

__version__ = "0.1.0"
