// bnnflow: AXI-Stream side-channel structs (ap_axis, ap_axiu, qdma_axis) for compiling FINN's cppsim programs
// with g++ and the open ap_types headers, which do not have this header. finn-hlslib's streamtools.h includes
// it for its DMA helpers; the layers bnnflow simulates only need it to compile. Zero-width side channels are
// stored as one bit.
#ifndef BNNFLOW_AP_AXI_SDATA_H
#define BNNFLOW_AP_AXI_SDATA_H

#include <ap_int.h>

namespace bnnflow_axi {
template <int W>
struct width {
    static const int value = W > 0 ? W : 1;
};
}  // namespace bnnflow_axi

template <int D, int U, int TI, int TD>
struct ap_axis {
    ap_int<D> data;
    ap_uint<(D + 7) / 8> keep;
    ap_uint<(D + 7) / 8> strb;
    ap_uint<bnnflow_axi::width<U>::value> user;
    ap_uint<1> last;
    ap_uint<bnnflow_axi::width<TI>::value> id;
    ap_uint<bnnflow_axi::width<TD>::value> dest;
};

template <int D, int U, int TI, int TD>
struct ap_axiu {
    ap_uint<D> data;
    ap_uint<(D + 7) / 8> keep;
    ap_uint<(D + 7) / 8> strb;
    ap_uint<bnnflow_axi::width<U>::value> user;
    ap_uint<1> last;
    ap_uint<bnnflow_axi::width<TI>::value> id;
    ap_uint<bnnflow_axi::width<TD>::value> dest;
};

template <int D, int U, int TI, int TD>
struct qdma_axis {
    ap_uint<D> data;
    ap_uint<(D + 7) / 8> keep;
    ap_uint<1> last;

    ap_uint<D> get_data() const { return data; }
    void set_data(const ap_uint<D> &d) { data = d; }
    ap_uint<(D + 7) / 8> get_keep() const { return keep; }
    void set_keep(const ap_uint<(D + 7) / 8> &k) { keep = k; }
    ap_uint<1> get_last() const { return last; }
    void set_last(const ap_uint<1> &l) { last = l; }
    void keep_all() { keep = ~ap_uint<(D + 7) / 8>(0); }
};

#endif
