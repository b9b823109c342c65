// Tile-sparse matrix-vector-activation unit: bnn_mvau with pruned PE x SIMD weight tiles skipped.
// y[r] = ACTVAL + #{t : acc[r] >= T[r][t]} (NTHRES = 0: y = acc), acc[r] summed over the kept tiles of r's row
// fold only; in XNOR mode a pruned tile adds no matches, so its share of the popcount is the caller's to re-base.
// A schedule ROM lists the kept tiles, and only they cost a cycle: STEPS = sum over row folds of
// max(1, kept tiles), a row fold without any still taking one dummy step to emit its outputs.
// The input still arrives as SF words per vector whatever the sparsity, so it is captured into one bank of a
// double buffer while the schedule walks the other: one vector per max(SF, STEPS) cycles. Valid/ready
// streams; the compute pipeline stalls on output back-pressure, the input capture only on a full buffer.
// Compute pipeline as bnn_mvau's (one global enable): issue, operand and weight-RAM read, RAM output register,
// partial sums of groups of SIMD terms, accumulate, threshold into the output register.
module bnn_mvau_sparse #(
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
    parameter int STEPS = (MW / SIMD) * (MH / PE),  // the default is the dense schedule
    parameter WEIGHT_FILE = "",
    parameter THRESH_FILE = "",
    parameter SCHED_FILE = ""
) (
    input  logic                  clk,
    input  logic                  rst_n,
    input  logic [SIMD*IBITS-1:0] in_data,
    input  logic                  in_valid,
    output logic                  in_ready,
    output logic [  PE*OBITS-1:0] out_data,
    output logic                  out_valid,
    input  logic                  out_ready
);
  if (MW < 1 || MH < 1 || PE < 1 || SIMD < 1) begin : g_bad_shape
    $error("bnn_mvau_sparse: MW (%0d), MH (%0d), PE (%0d) and SIMD (%0d) must be at least 1", MW, MH, PE, SIMD);
  end
  if (MW % SIMD != 0) begin : g_bad_simd
    $error("bnn_mvau_sparse: SIMD (%0d) must divide MW (%0d)", SIMD, MW);
  end
  if (MH % PE != 0) begin : g_bad_pe
    $error("bnn_mvau_sparse: PE (%0d) must divide MH (%0d)", PE, MH);
  end
  if (IBITS < 1 || WBITS < 1 || OBITS < 1 || ACCBITS < 2) begin : g_bad_width
    $error("bnn_mvau_sparse: IBITS (%0d), WBITS (%0d), OBITS (%0d) must be at least 1, ACCBITS (%0d) at least 2",
           IBITS, WBITS, OBITS, ACCBITS);
  end
  if (NTHRES < 0) begin : g_bad_nthres
    $error("bnn_mvau_sparse: NTHRES (%0d) must not be negative", NTHRES);
  end
  if (XNOR && (IBITS != 1 || WBITS != 1)) begin : g_bad_xnor
    $error("bnn_mvau_sparse: XNOR needs 1-bit codes (IBITS %0d, WBITS %0d)", IBITS, WBITS);
  end
  if (STEPS < MH / PE) begin : g_bad_steps
    $error("bnn_mvau_sparse: STEPS (%0d) must be at least MH / PE (%0d), a step per row fold", STEPS, MH / PE);
  end

  localparam int SF = MW / SIMD;
  localparam int NF = MH / PE;
  localparam int TW = (NTHRES > 0) ? NTHRES : 1;
  localparam int SFW = (SF > 1) ? $clog2(SF) : 1;
  localparam int NFW = (NF > 1) ? $clog2(NF) : 1;
  localparam int KW = (STEPS > 1) ? $clog2(STEPS) : 1;
  // The SIMD terms are summed in G groups of GS (a power of two near sqrt(2 * SIMD)): log2(GS) adder levels in
  // the group stage, log2(G) plus the accumulator's add in the next, so that both stages are about as deep.
  localparam int LS = (SIMD > 1) ? $clog2(SIMD) : 0;
  localparam int GS = ((1 << ((LS + 2) / 2)) < SIMD) ? (1 << ((LS + 2) / 2)) : SIMD;
  localparam int G = (SIMD + GS - 1) / GS;

  // Schedule: word k, LSB first, holds the column fold of step k in [SFW-1:0], `last` (the last step of its row
  // fold) at SFW and `valid` (0 for the dummy step of an empty row fold) at SFW+1; steps in (nf, sf) order.
  (* rom_style = "block" *) logic [SFW+1:0] smem[STEPS];
  // Weights: word k holds the tile of step k, W[nf*PE+p][sf*SIMD+s] at bit (p*SIMD+s)*WBITS (dummy: ignored).
  (* rom_style = "block" *) logic [PE*SIMD*WBITS-1:0] wmem[STEPS];
  // Thresholds: word nf holds T[nf*PE+p][t] at bit (p*TW+t)*ACCBITS.
  logic [PE*TW*ACCBITS-1:0] tmem[NF];
  // Two banks as two arrays: the bank select is then a read mux, not an address adder.
  logic [SIMD*IBITS-1:0] ibuf0[SF], ibuf1[SF];

  initial begin
    $readmemh(SCHED_FILE, smem);
    $readmemh(WEIGHT_FILE, wmem);
    if (NTHRES > 0) $readmemh(THRESH_FILE, tmem);
  end

  // Input side: fill bank `wbank`; full[b] hands bank b to the compute side until its last step is issued.
  logic [1:0] full;
  logic wbank, rbank;
  logic [SFW-1:0] wsf;
  logic put, fill_done, release_bank;

  assign in_ready = !full[wbank];
  assign put = in_valid && in_ready;
  assign fill_done = put && (wsf == SFW'(SF - 1));

  always_ff @(posedge clk) begin
    if (put) begin
      if (wbank) ibuf1[wsf] <= in_data;
      else ibuf0[wsf] <= in_data;
    end
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      full <= '0;
      wbank <= 1'b0;
      wsf <= '0;
    end else begin
      // Never the same bank: the input side only fills a bank that is not full, the compute side only
      // releases a full one.
      for (int b = 0; b < 2; b++) begin
        if (fill_done && wbank == 1'(b)) full[b] <= 1'b1;
        if (release_bank && rbank == 1'(b)) full[b] <= 1'b0;
      end
      if (put) begin
        wsf <= fill_done ? '0 : wsf + 1'b1;
        if (fill_done) wbank <= !wbank;
      end
    end
  end

  // Compute side, stage 0: issue step k over bank `rbank`. The schedule word of step k is read a cycle ahead
  // (sq), so the buffer read below needs no ROM read before it, and the bank can be released at issue: nothing
  // reads it afterwards, even while the pipeline stalls.
  logic [KW-1:0] k, k_next, saddr;
  logic [NFW-1:0] nf;
  logic [SFW+1:0] sq;
  logic first0;  // step k starts its row fold
  logic advance, issue;
  logic [SFW-1:0] sq_sf;
  logic sq_last, sq_valid;

  assign {sq_valid, sq_last, sq_sf} = sq;
  assign advance = !(out_valid && !out_ready);
  assign issue = advance && full[rbank];
  assign release_bank = issue && (k == KW'(STEPS - 1));
  assign k_next = (k == KW'(STEPS - 1)) ? '0 : k + 1'b1;
  assign saddr = !rst_n ? '0 : issue ? k_next : k;

  always_ff @(posedge clk) sq <= smem[saddr];

  // Stage 1: registered operands and the weight-RAM read. Each stage carries its step's valid flag (v), whether
  // it starts (first) or ends (last) its row fold, whether it is a real step (valid, not a dummy one) and the row
  // fold (n) whose thresholds apply.
  logic v1, first1, last1, valid1;
  logic [NFW-1:0] n1;
  logic [SIMD*IBITS-1:0] x1;
  logic [PE*SIMD*WBITS-1:0] w1;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      k <= '0;
      nf <= '0;
      rbank <= 1'b0;
      first0 <= 1'b1;
      v1 <= 1'b0;
    end else if (advance) begin
      v1 <= issue;
      if (issue) begin
        x1 <= rbank ? ibuf1[sq_sf] : ibuf0[sq_sf];
        w1 <= wmem[k];
        n1 <= nf;
        first1 <= first0;
        last1 <= sq_last;
        valid1 <= sq_valid;
        first0 <= sq_last;
        k <= k_next;
        if (sq_last) nf <= (nf == NFW'(NF - 1)) ? '0 : nf + 1'b1;
        if (release_bank) rbank <= !rbank;
      end
    end
  end

  // Stage 2: the RAM's output register. The block RAM's clock-to-out (several ns, more than a LUT level) then
  // ends here instead of starting the adder tree.
  logic v2, first2, last2, valid2;
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
      valid2 <= valid1;
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

  // Stage 3: the products (XNOR matches) of each PE summed in groups of GS. A dummy step adds nothing: its
  // all-zero weight word would still match zero input codes in XNOR mode.
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
        part[p][g] = valid2 ? tree_sum(grp) : '0;
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
