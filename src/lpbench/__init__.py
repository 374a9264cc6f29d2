"""lpbench: reproduce low-precision inference papers (SLaNC, RRS, IterL2Norm, Unified Normalization,
Tender) end to end on real models. See README.md."""
__version__ = "0.1.0"
