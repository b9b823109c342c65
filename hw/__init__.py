"""Hardware stage: the SystemVerilog streaming-layer library (rtl/) and RTL generation from folded FINN graphs."""
