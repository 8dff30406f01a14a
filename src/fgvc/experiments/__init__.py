"""Experiments that can be trusted: repeats over seeds, k-fold, comparisons, sweeps, ensembles."""
