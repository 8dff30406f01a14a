"""Generative wing: synthetic labelled images (written as a folder + manifest the data layer reads) and
their quality metrics (FID / KID)."""
