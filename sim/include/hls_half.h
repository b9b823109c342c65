// bnnflow: the `half` type that FINN's cnpy.h names (Vitis HLS defines it in hls_half.h), as the compiler's
// IEEE binary16 type. bnnflow's layers never use it; cnpy.h needs the name to compile.
#ifndef BNNFLOW_HLS_HALF_H
#define BNNFLOW_HLS_HALF_H
typedef _Float16 half;
#endif
