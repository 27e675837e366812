"""The paper's numbers and the literature it compares with, defined once: the three-split means
that survive in the paper's text (DESIGN.md, "Figures that survive"), each with its source."""

from __future__ import annotations

from typing import Any

# The paper's and the literature's three-split means (DESIGN.md, "Figures that survive").
# Kept as data with their source so tables can set them beside our measurements.
LITERATURE: list[dict[str, Any]] = [
    {
        "method": "Two-stream ConvNet + ConvLSTM (Ye et al. 2019, the paper)",
        "ucf101": 93.9,
        "hmdb51": 69.3,
        "source": "Ye, Cheng, Yang & Xu, IEEE Access 7 (2019), results section and Table 3: "
        "every margin the paper states (+0.3 over TS-LSTM, +0.8 over TSN, +0.1 over "
        "two-stream fusion + IDT on HMDB51) is computed from 69.3",
    },
    {
        "method": "Two-stream ConvNet + ConvLSTM (Ye et al. 2019, the paper's abstract)",
        "ucf101": 93.9,
        "hmdb51": 69.4,
        "source": "Ye, Cheng, Yang & Xu, IEEE Access 7 (2019), abstract: 69.4 on HMDB51 "
        "(the results section says 69.3)",
    },
    {
        "method": "Two-stream (Simonyan & Zisserman 2014)",
        "ucf101": 88.0,
        "hmdb51": 59.4,
        "source": "as cited in Ye et al. 2019, Table 3",
    },
    {
        "method": "TSN, two modalities (Wang et al. 2016)",
        "ucf101": 94.0,
        "hmdb51": 68.5,
        "source": "as cited in Ye et al. 2019, Table 3",
    },
    {
        "method": "TS-LSTM (Ma et al. 2019)",
        "ucf101": 94.1,
        "hmdb51": 69.0,
        "source": "as cited in Ye et al. 2019, Table 3",
    },
    {
        "method": "ST-ResNet (Feichtenhofer et al. 2016)",
        "ucf101": 93.4,
        "hmdb51": 66.4,
        "source": "as cited in Ye et al. 2019, Table 3",
    },
    {
        "method": "Convolutional two-stream fusion (Feichtenhofer et al. 2016)",
        "ucf101": 92.5,
        "hmdb51": 65.4,
        "source": "as cited in Ye et al. 2019, Table 3",
    },
    {
        "method": "Convolutional two-stream fusion + IDT",
        "ucf101": 93.5,
        "hmdb51": 69.2,
        "source": "as cited in Ye et al. 2019, Table 3",
    },
    {
        "method": "C3D + IDT (Tran et al. 2015)",
        "ucf101": 90.4,
        "hmdb51": None,
        "source": "as cited in Ye et al. 2019, Table 3",
    },
    {
        "method": "Two-stream I3D, Kinetics pre-training (Carreira & Zisserman 2017)",
        "ucf101": 98.0,
        "hmdb51": 80.7,
        "source": "as cited in Ye et al. 2019, Table 3",
    },
]

# The paper's own three-split means (its results section; the abstract says 69.4 on HMDB51).
PAPER_TOP1: dict[str, float] = {k: LITERATURE[0][k] for k in ("ucf101", "hmdb51")}

__all__ = ["LITERATURE", "PAPER_TOP1"]
