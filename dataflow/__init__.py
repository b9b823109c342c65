"""Dataflow stage: FINN (finn-plus) compilation of QONNX models to folded streaming hardware graphs."""
