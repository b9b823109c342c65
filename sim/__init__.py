"""Simulation stage: Verilator builds and test benches, bit-exact comparison and cycle measurement."""
