// Matrix-vector-activation unit, folded: PE output rows and SIMD input columns per cycle.
// y[r] = ACTVAL + #{t : acc[r] >= T[r][t]}, acc[r] = sum_c W[r][c] * x[c]  (NTHRES = 0: y = acc)
// XNOR = 1: x and W are {0,1} codes of {-1,+1} and acc is the popcount of matches (FINN's binaryXnorMode).
// One frame takes MW/SIMD * MH/PE cycles; the input vector is consumed during the first row fold and replayed
// from a buffer for the others. Valid/ready streams; the whole pipeline stalls on output back-pressure.
module bnn_mvau #(
    parameter int MW = 8,
    parameter int MH = 8,
    parameter int PE = 1,
    parameter int SIMD = 1,
    parameter int IBITS = 1,
    parameter int WBITS = 1,
    parameter int ACCBITS = 16,  // signed internal accumulator and threshold width
    parameter int OBITS = 1,  // output element width (with NTHRES = 0: the accumulator's width)
    parameter bit XNOR = 1'b1,
    parameter bit I_SIGNED = 1'b0,
    parameter bit I_BIPOLAR = 1'b0,
    parameter bit W_SIGNED = 1'b0,
    parameter bit W_BIPOLAR = 1'b0,
    parameter int NTHRES = 1,
    parameter int ACTVAL = 0,
    parameter WEIGHT_FILE = "",
    parameter THRESH_FILE = ""
) (
    input  logic                   clk,
    input  logic                   rst_n,
    input  logic [ SIMD*IBITS-1:0] in_data,
    input  logic                   in_valid,
    output logic                   in_ready,
    output logic [   PE*OBITS-1:0] out_data,
    output logic                   out_valid,
    input  logic                   out_ready
);
  localparam int SF = MW / SIMD;
  localparam int NF = MH / PE;
  localparam int WDEPTH = SF * NF;
  localparam int TW = (NTHRES > 0) ? NTHRES : 1;
  localparam int SFW = (SF > 1) ? $clog2(SF) : 1;
  localparam int NFW = (NF > 1) ? $clog2(NF) : 1;
  localparam int WAW = (WDEPTH > 1) ? $clog2(WDEPTH) : 1;

  // Weights: word nf*SF+sf holds W[nf*PE+p][sf*SIMD+s] at bit (p*SIMD+s)*WBITS.
  (* rom_style = "block" *) logic [PE*SIMD*WBITS-1:0] wmem[WDEPTH];
  // Thresholds: word nf holds T[nf*PE+p][t] at bit (p*TW+t)*ACCBITS.
  logic [PE*TW*ACCBITS-1:0] tmem[NF];
  logic [SIMD*IBITS-1:0] ibuf[SF];

  initial begin
    $readmemh(WEIGHT_FILE, wmem);
    if (NTHRES > 0) $readmemh(THRESH_FILE, tmem);
  end

  logic [SFW-1:0] sf;
  logic [NFW-1:0] nf;
  logic [WAW-1:0] waddr;  // nf*SF+sf, kept as a counter (no multiplier)
  logic advance;
  logic take;  // stage 0 issues one (nf, sf) step this cycle
  logic [SIMD*IBITS-1:0] x0;

  assign advance = !(out_valid && !out_ready);
  assign in_ready = advance && (nf == '0);
  assign take = advance && ((nf != '0) || in_valid);
  assign x0 = (nf == '0) ? in_data : ibuf[sf];

  // Stage 1: registered operands and memory reads.
  logic v1, first1, last1;
  logic [SIMD*IBITS-1:0] x1;
  logic [PE*SIMD*WBITS-1:0] w1;
  logic [PE*TW*ACCBITS-1:0] t1;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      sf <= '0;
      nf <= '0;
      waddr <= '0;
      v1 <= 1'b0;
    end else if (advance) begin
      v1 <= take;
      if (take) begin
        if (nf == '0) ibuf[sf] <= in_data;
        x1 <= x0;
        w1 <= wmem[waddr];
        waddr <= (waddr == WAW'(WDEPTH - 1)) ? '0 : waddr + 1'b1;
        t1 <= tmem[nf];
        first1 <= (sf == '0);
        last1 <= (sf == SFW'(SF - 1));
        if (sf == SFW'(SF - 1)) begin
          sf <= '0;
          nf <= (nf == NFW'(NF - 1)) ? '0 : nf + 1'b1;
        end else begin
          sf <= sf + 1'b1;
        end
      end
    end
  end

  function automatic logic signed [ACCBITS-1:0] decode_x(input logic [IBITS-1:0] code);
    if (I_BIPOLAR) return code[0] ? ACCBITS'(1) : -ACCBITS'(1);
    if (I_SIGNED) return ACCBITS'($signed(code));
    return ACCBITS'({1'b0, code});
  endfunction

  // x * w for a WBITS-bit weight code, as shifted partial products: the operands are a few bits wide, so LUTs
  // (as FINN's resType "lut"), not DSP slices, should compute them.
  function automatic logic signed [ACCBITS-1:0] times_w(input logic signed [ACCBITS-1:0] x,
                                                        input logic [WBITS-1:0] code);
    logic signed [ACCBITS-1:0] r;
    if (W_BIPOLAR) return code[0] ? x : -x;
    r = '0;
    for (int b = 0; b < WBITS; b++)
      if (code[b]) r = (W_SIGNED && b == WBITS - 1) ? r - (x <<< b) : r + (x <<< b);
    return r;
  endfunction

  // Balanced adder trees (log2 depth): a linear chain of SIMD additions is a long critical path, and its
  // depth overflows the call stack of Yosys' LUT mapping (abc9) in the WebAssembly build.
  function automatic logic signed [ACCBITS-1:0] tree_sum(input logic signed [ACCBITS-1:0] v[SIMD]);
    logic signed [ACCBITS-1:0] node[SIMD];
    int n;
    node = v;
    n = SIMD;
    while (n > 1) begin
      for (int i = 0; i < n / 2; i++) node[i] = node[2*i] + node[2*i+1];
      if (n % 2 == 1) node[n/2] = node[n-1];
      n = (n + 1) / 2;
    end
    return node[0];
  endfunction

  function automatic logic [ACCBITS-1:0] count_ge(input logic signed [ACCBITS-1:0] x,
                                                  input logic [TW*ACCBITS-1:0] thr);
    logic [ACCBITS-1:0] node[TW];
    int n;
    for (int t = 0; t < TW; t++) node[t] = ACCBITS'(x >= $signed(thr[t*ACCBITS+:ACCBITS]));
    n = TW;
    while (n > 1) begin
      for (int i = 0; i < n / 2; i++) node[i] = node[2*i] + node[2*i+1];
      if (n % 2 == 1) node[n/2] = node[n-1];
      n = (n + 1) / 2;
    end
    return node[0];
  endfunction

  // Stage 2: accumulate; on the last column fold, threshold into the output register.
  logic signed [ACCBITS-1:0] acc[PE];
  logic signed [ACCBITS-1:0] sum[PE];

  always_comb begin
    for (int p = 0; p < PE; p++) begin
      logic signed [ACCBITS-1:0] term[SIMD];
      for (int s = 0; s < SIMD; s++) begin
        logic [IBITS-1:0] xc;
        logic [WBITS-1:0] wc;
        xc = x1[s*IBITS+:IBITS];
        wc = w1[(p*SIMD+s)*WBITS+:WBITS];
        if (XNOR) term[s] = (xc[0] == wc[0]) ? ACCBITS'(1) : '0;
        else term[s] = times_w(decode_x(xc), wc);
      end
      sum[p] = (first1 ? '0 : acc[p]) + tree_sum(term);
    end
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      out_valid <= 1'b0;
    end else begin
      if (out_valid && out_ready) out_valid <= 1'b0;
      if (advance && v1) begin
        for (int p = 0; p < PE; p++) acc[p] <= sum[p];
        if (last1) begin
          out_valid <= 1'b1;
          for (int p = 0; p < PE; p++) begin
            if (NTHRES == 0) begin
              out_data[p*OBITS+:OBITS] <= OBITS'(sum[p]);
            end else begin
              out_data[p*OBITS+:OBITS] <= OBITS'(ACCBITS'(ACTVAL) + count_ge(sum[p], t1[p*TW*ACCBITS+:TW*ACCBITS]));
            end
          end
        end
      end
    end
  end
endmodule
