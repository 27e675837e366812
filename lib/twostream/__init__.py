"""twostream: a reproducibility study of two-stream ResNet + ConvLSTM action recognition.

Ye, Cheng, Yang & Xu, "Two-Stream Convolutional Network for Improving Activity
Recognition Using Convolutional Long Short-Term Memory Networks", IEEE Access 7 (2019).

Modules are flat and import lazily: ``import twostream`` is cheap (no torch import).
"""

__version__ = "0.1.0"
