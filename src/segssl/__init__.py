"""segssl: label-efficient semantic segmentation."""

__version__ = "0.1.0"
