"""Helpers shared by the Molecule verifiers and the benchmarks."""
