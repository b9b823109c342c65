"""sim stage (see ../shared/DESIGN.md); filled in by the dataflow and RTL issues."""
