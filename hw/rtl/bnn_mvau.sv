// Matrix-vector-activation unit, folded: PE output rows and SIMD input columns per cycle.
// y[r] = ACTVAL + #{t : acc[r] >= T[r][t]}, acc[r] = sum_c W[r][c] * x[c]  (NTHRES = 0: y = acc)
// XNOR = 1: x and W are {0,1} codes of {-1,+1} and acc is the popcount of matches (FINN's binaryXnorMode).
// One frame takes MW/SIMD * MH/PE cycles; the input vector is consumed during the first row fold and replayed
// from a buffer for the others. Valid/ready streams; the whole pipeline stalls on output back-pressure.
// Pipeline (one global enable, so the stages cost latency, never throughput): issue, operand and weight-RAM
// read, RAM output register, partial sums of groups of SIMD terms, accumulate, threshold into the output
// register: a row fold's outputs are valid 5 cycles after its last column fold is issued (4 stages more than a
// layer registering its result straight from its input: hw/layers.py PIPELINE_STAGES).
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
  if (MW < 1 || MH < 1 || PE < 1 || SIMD < 1) begin : g_bad_shape
    $error("bnn_mvau: MW (%0d), MH (%0d), PE (%0d) and SIMD (%0d) must be at least 1", MW, MH, PE, SIMD);
  end
  if (MW % SIMD != 0) begin : g_bad_simd
    $error("bnn_mvau: SIMD (%0d) must divide MW (%0d)", SIMD, MW);
  end
  if (MH % PE != 0) begin : g_bad_pe
    $error("bnn_mvau: PE (%0d) must divide MH (%0d)", PE, MH);
  end
  if (IBITS < 1 || WBITS < 1 || OBITS < 1 || ACCBITS < 2) begin : g_bad_width
    $error("bnn_mvau: IBITS (%0d), WBITS (%0d), OBITS (%0d) must be at least 1 and ACCBITS (%0d) at least 2",
           IBITS, WBITS, OBITS, ACCBITS);
  end
  if (NTHRES < 0) begin : g_bad_nthres
    $error("bnn_mvau: NTHRES (%0d) must not be negative", NTHRES);
  end
  if (XNOR && (IBITS != 1 || WBITS != 1)) begin : g_bad_xnor
    $error("bnn_mvau: XNOR needs 1-bit codes (IBITS %0d, WBITS %0d)", IBITS, WBITS);
  end

  localparam int SF = MW / SIMD;
  localparam int NF = MH / PE;
  localparam int WDEPTH = SF * NF;
  localparam int TW = (NTHRES > 0) ? NTHRES : 1;
  localparam int SFW = (SF > 1) ? $clog2(SF) : 1;
  localparam int NFW = (NF > 1) ? $clog2(NF) : 1;
  localparam int WAW = (WDEPTH > 1) ? $clog2(WDEPTH) : 1;
  // The SIMD terms are summed in G groups of GS (a power of two near sqrt(2 * SIMD)): log2(GS) adder levels in
  // the group stage, log2(G) plus the accumulator's add in the next, so that both stages are about as deep.
  localparam int LS = (SIMD > 1) ? $clog2(SIMD) : 0;
  localparam int GS = ((1 << ((LS + 2) / 2)) < SIMD) ? (1 << ((LS + 2) / 2)) : SIMD;
  localparam int G = (SIMD + GS - 1) / GS;

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
  // nf0 = (nf == 0), kept as a register: the input handshake is then one gate from flip-flops.
  logic nf0;
  assign in_ready = advance && nf0;
  assign take = advance && (!nf0 || in_valid);
  assign x0 = nf0 ? in_data : ibuf[sf];

  // The buffer slot of the current column fold follows the input during the first row fold, whether or not it is
  // taken: it is last written by the word taken, and read only in the later row folds. Its write enable then
  // does not wait for the stall, which depends on the next FIFO.
  always_ff @(posedge clk) begin
    if (nf0) ibuf[sf] <= in_data;
  end

  // Stage 1: registered operands and the weight-RAM read. Each stage carries its step's valid flag (v), whether
  // it starts (first) or ends (last) its row fold, and the row fold (n) whose thresholds apply.
  logic v1, first1, last1;
  logic [NFW-1:0] n1;
  logic [SIMD*IBITS-1:0] x1;
  logic [PE*SIMD*WBITS-1:0] w1;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      sf <= '0;
      nf <= '0;
      nf0 <= 1'b1;
      waddr <= '0;
      v1 <= 1'b0;
    end else if (advance) begin
      v1 <= take;
      if (take) begin
        x1 <= x0;
        w1 <= wmem[waddr];
        waddr <= (waddr == WAW'(WDEPTH - 1)) ? '0 : waddr + 1'b1;
        n1 <= nf;
        first1 <= (sf == '0);
        last1 <= (sf == SFW'(SF - 1));
        if (sf == SFW'(SF - 1)) begin
          sf <= '0;
          nf <= (nf == NFW'(NF - 1)) ? '0 : nf + 1'b1;
          nf0 <= (nf == NFW'(NF - 1));
        end else begin
          sf <= sf + 1'b1;
        end
      end
    end
  end

  // Stage 2: the RAM's output register. The block RAM's clock-to-out (several ns, more than a LUT level) then
  // ends here instead of starting the adder tree.
  logic v2, first2, last2;
  logic [NFW-1:0] n2;
  logic [SIMD*IBITS-1:0] x2;
  logic [PE*SIMD*WBITS-1:0] w2;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      v2 <= 1'b0;
    end else if (advance) begin
      v2 <= v1;
      x2 <= x1;
      w2 <= w1;
      n2 <= n1;
      first2 <= first1;
      last2 <= last1;
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

  // Balanced adder trees (log2 depth) over GS or G values, the unused ones zero: a linear chain of additions is
  // a long critical path, and its depth overflows the call stack of Yosys' LUT mapping (abc9) in the
  // WebAssembly build.
  localparam int TN = (GS > G) ? GS : G;

  function automatic logic signed [ACCBITS-1:0] tree_sum(input logic signed [ACCBITS-1:0] v[TN]);
    logic signed [ACCBITS-1:0] node[TN];
    int n;
    node = v;
    n = TN;
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

  // Stage 3: the products (XNOR matches) of each PE summed in groups of GS.
  logic v3, first3, last3;
  logic [NFW-1:0] n3;
  logic signed [ACCBITS-1:0] part3[PE][G];
  logic signed [ACCBITS-1:0] part[PE][G];

  always_comb begin
    for (int p = 0; p < PE; p++) begin
      logic signed [ACCBITS-1:0] term[G*GS];
      for (int s = SIMD; s < G * GS; s++) term[s] = '0;
      for (int s = 0; s < SIMD; s++) begin
        logic [IBITS-1:0] xc;
        logic [WBITS-1:0] wc;
        xc = x2[s*IBITS+:IBITS];
        wc = w2[(p*SIMD+s)*WBITS+:WBITS];
        if (XNOR) term[s] = (xc[0] == wc[0]) ? ACCBITS'(1) : '0;
        else term[s] = times_w(decode_x(xc), wc);
      end
      for (int g = 0; g < G; g++) begin
        logic signed [ACCBITS-1:0] grp[TN];
        for (int i = GS; i < TN; i++) grp[i] = '0;
        for (int i = 0; i < GS; i++) grp[i] = term[g*GS+i];
        part[p][g] = tree_sum(grp);
      end
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

  // Stage 4: accumulate. The row fold's thresholds are read alongside, so that only its index, not PE * NTHRES
  // thresholds, travels down the pipeline.
  logic v4;  // acc holds a row fold's finished sums
  logic signed [ACCBITS-1:0] acc[PE];
  logic [PE*TW*ACCBITS-1:0] t4;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      v4 <= 1'b0;
    end else if (advance) begin
      v4 <= v3 && last3;
      if (v3) begin
        for (int p = 0; p < PE; p++) begin
          logic signed [ACCBITS-1:0] s[TN];
          for (int g = G; g < TN; g++) s[g] = '0;
          for (int g = 0; g < G; g++) s[g] = part3[p][g];
          acc[p] <= (first3 ? '0 : acc[p]) + tree_sum(s);
        end
      end
      if (v3 && last3) t4 <= tmem[n3];
    end
  end

  // Stage 5: threshold the finished sums into the output register.
  always_ff @(posedge clk) begin
    if (!rst_n) begin
      out_valid <= 1'b0;
    end else begin
      if (out_valid && out_ready) out_valid <= 1'b0;
      if (advance && v4) begin
        out_valid <= 1'b1;
        for (int p = 0; p < PE; p++) begin
          if (NTHRES == 0) begin
            out_data[p*OBITS+:OBITS] <= OBITS'(acc[p]);
          end else begin
            out_data[p*OBITS+:OBITS] <= OBITS'(ACCBITS'(ACTVAL) + count_ge(acc[p], t4[p*TW*ACCBITS+:TW*ACCBITS]));
          end
        end
      end
    end
  end
endmodule
