// The compute core shared by the MVAU, the sparse MVAU and the VVAU: they differ in how they fetch operands (their
// stages 0 to 2), not in how they add, accumulate and compare (stages 3 to 5, here).
// Per step (one a cycle when not stalled) lane p computes sum_s x[p][s] * w[p][s] over its SIMD operand pairs
// (XNOR = 1: the number of s with x[p][s] == w[p][s], both {0,1} codes of {-1,+1}, FINN's binaryXnorMode),
// accumulated over the steps of a fold (from a step flagged `first` to one flagged `last`); a fold's finished sums
// acc[p] leave as y[p] = ACTVAL + #{t : acc[p] >= T[n*PE+p][t]} (NTHRES = 0: y = acc), n the fold's index.
// Operands, as the wrapper's stage-2 registers hold them: x2 holds x[p][s] (IBITS) at bit (p*SIMD+s)*IBITS, w2
// holds w[p][s] (WBITS) at bit (p*SIMD+s)*WBITS. Thresholds: word n holds T[n*PE+p][t] at bit (p*NTHRES+t)*ACCBITS.
// Output: one word per fold, y[p] (OBITS) at bit p*OBITS. Stage 3 sums the products of each lane in G groups of
// GS, stage 4 accumulates the group sums, stage 5 thresholds into the output register: a fold's outputs are valid
// 3 cycles after its last step reaches stage 2. One global enable (`advance`, low only while the output register
// is full and not taken) stalls the wrapper's stages with these, so the stages cost latency, never throughput.
module bnn_mac_core #(
    parameter int PE = 1,
    parameter int SIMD = 1,
    parameter int NF = 1,  // folds whose thresholds are stored
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
    parameter THRESH_FILE = "",
    parameter NAME = "bnn_mac_core"  // the wrapper, named in the parameter checks' messages
) (
    input  logic                                 clk,
    input  logic                                 rst_n,
    output logic                                 advance,
    input  logic                                 v2,         // stage 2 holds a step
    input  logic                                 first2,     // the step starts its fold
    input  logic                                 last2,      // the step ends its fold
    input  logic                                 add2,       // 0: the step adds nothing (a dummy step)
    input  logic [(NF > 1 ? $clog2(NF) : 1)-1:0] n2,         // the fold, whose thresholds apply
    input  logic [            PE*SIMD*IBITS-1:0] x2,
    input  logic [            PE*SIMD*WBITS-1:0] w2,
    output logic [                 PE*OBITS-1:0] out_data,
    output logic                                 out_valid,
    input  logic                                 out_ready
);
  if (IBITS < 1 || WBITS < 1 || OBITS < 1 || ACCBITS < 2) begin : g_bad_width
    $error("%s: IBITS (%0d), WBITS (%0d), OBITS (%0d) must be at least 1 and ACCBITS (%0d) at least 2", NAME,
           IBITS, WBITS, OBITS, ACCBITS);
  end
  if (NTHRES < 0) begin : g_bad_nthres
    $error("%s: NTHRES (%0d) must not be negative", NAME, NTHRES);
  end
  if (XNOR && (IBITS != 1 || WBITS != 1)) begin : g_bad_xnor
    $error("%s: XNOR needs 1-bit codes (IBITS %0d, WBITS %0d)", NAME, IBITS, WBITS);
  end

  localparam int TW = (NTHRES > 0) ? NTHRES : 1;
  localparam int NFW = (NF > 1) ? $clog2(NF) : 1;
  // The SIMD terms are summed in G groups of GS (a power of two near sqrt(2 * SIMD)): log2(GS) adder levels in
  // the group stage, log2(G) plus the accumulator's add in the next, so that both stages are about as deep.
  localparam int LS = (SIMD > 1) ? $clog2(SIMD) : 0;
  localparam int GS = ((1 << ((LS + 2) / 2)) < SIMD) ? (1 << ((LS + 2) / 2)) : SIMD;
  localparam int G = (SIMD + GS - 1) / GS;

  logic [PE*TW*ACCBITS-1:0] tmem[NF];

  initial begin
    if (NTHRES > 0) $readmemh(THRESH_FILE, tmem);
  end

  assign advance = !(out_valid && !out_ready);

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

  // Stage 3: the products (XNOR matches) of each lane summed in groups of GS; the terms past SIMD are zero.
  logic v3, first3, last3;
  logic [NFW-1:0] n3;
  logic [G*GS*ACCBITS-1:0] term[PE];
  logic [ACCBITS-1:0] gsum[PE][G];
  logic [G*ACCBITS-1:0] part[PE], part3[PE];

  always_comb begin
    for (int p = 0; p < PE; p++) begin
      term[p] = '0;
      for (int s = 0; s < SIMD; s++) begin
        logic [IBITS-1:0] xc;
        logic [WBITS-1:0] wc;
        xc = x2[(p*SIMD+s)*IBITS+:IBITS];
        wc = w2[(p*SIMD+s)*WBITS+:WBITS];
        if (XNOR) term[p][s*ACCBITS+:ACCBITS] = (xc[0] == wc[0]) ? ACCBITS'(1) : '0;
        else term[p][s*ACCBITS+:ACCBITS] = times_w(decode_x(xc), wc);
      end
    end
  end

  for (genvar p = 0; p < PE; p++) begin : g_lane
    for (genvar g = 0; g < G; g++) begin : g_group
      bnn_adder_tree #(
          .N   (GS),
          .BITS(ACCBITS)
      ) u_group (
          .terms(term[p][g*GS*ACCBITS+:GS*ACCBITS]),
          .sum  (gsum[p][g])
      );
      assign part[p][g*ACCBITS+:ACCBITS] = add2 ? gsum[p][g] : '0;
    end
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      v3 <= 1'b0;
    end else if (advance) begin
      v3 <= v2;
      part3 <= part;
      n3 <= n2;
      first3 <= first2;
      last3 <= last2;
    end
  end

  // Stage 4: accumulate. The fold's thresholds are read alongside, so that only its index, not PE * NTHRES
  // thresholds, travels down the pipeline.
  logic v4;  // acc holds a fold's finished sums
  logic [ACCBITS-1:0] psum[PE];
  logic signed [ACCBITS-1:0] acc[PE];
  logic [PE*TW*ACCBITS-1:0] t4;

  for (genvar p = 0; p < PE; p++) begin : g_acc
    bnn_adder_tree #(
        .N   (G),
        .BITS(ACCBITS)
    ) u_parts (
        .terms(part3[p]),
        .sum  (psum[p])
    );
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      v4 <= 1'b0;
    end else if (advance) begin
      v4 <= v3 && last3;
      if (v3) begin
        for (int p = 0; p < PE; p++) acc[p] <= (first3 ? '0 : acc[p]) + psum[p];
      end
      if (v3 && last3) t4 <= tmem[n3];
    end
  end

  // Stage 5: threshold the finished sums into the output register. (With NTHRES = 0 the counts are left unused,
  // and synthesis removes them.)
  logic [ACCBITS-1:0] count[PE];
  logic [PE*OBITS-1:0] y;

  for (genvar p = 0; p < PE; p++) begin : g_out
    bnn_count_ge #(
        .N   (TW),
        .BITS(ACCBITS)
    ) u_count (
        .x    (acc[p]),
        .thr  (t4[p*TW*ACCBITS+:TW*ACCBITS]),
        .count(count[p])
    );
  end

  always_comb begin
    for (int p = 0; p < PE; p++) begin
      if (NTHRES == 0) y[p*OBITS+:OBITS] = OBITS'(acc[p]);
      else y[p*OBITS+:OBITS] = OBITS'(ACCBITS'(ACTVAL) + count[p]);
    end
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      out_valid <= 1'b0;
    end else begin
      if (out_valid && out_ready) out_valid <= 1'b0;
      if (advance && v4) begin
        out_valid <= 1'b1;
        out_data  <= y;
      end
    end
  end
endmodule
