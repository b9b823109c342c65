// Tile-sparse matrix-vector-activation unit: bnn_mvau with pruned PE x SIMD weight tiles skipped.
// y[r] = ACTVAL + #{t : acc[r] >= T[r][t]} (NTHRES = 0: y = acc), acc[r] summed over the kept tiles of r's row
// fold only; in XNOR mode a pruned tile adds no matches, so its share of the popcount is the caller's to re-base.
// A schedule ROM lists the kept tiles, and only they cost a cycle: STEPS = sum over row folds of
// max(1, kept tiles), a row fold without any still taking one dummy step to emit its outputs.
// The input still arrives as SF words per vector whatever the sparsity, so it is captured into one bank of a
// double buffer while the schedule walks the other: one vector per max(SF, STEPS) cycles. Valid/ready
// streams; the compute pipeline stalls on output back-pressure, the input capture only on a full buffer.
// Input and output words as bnn_mvau's. This wrapper fetches the operands (stages 0 to 2); bnn_mac_core adds,
// accumulates and thresholds (3 to 5). Compute pipeline as bnn_mvau's (one global enable): issue, operand and
// weight-RAM read, RAM output register, partial sums of groups of SIMD terms, accumulate, threshold into the
// output register.
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
  if (STEPS < MH / PE) begin : g_bad_steps
    $error("bnn_mvau_sparse: STEPS (%0d) must be at least MH / PE (%0d), a step per row fold", STEPS, MH / PE);
  end
  // The core checks the widths, NTHRES and XNOR.

  localparam int SF = MW / SIMD;
  localparam int NF = MH / PE;
  localparam int SFW = (SF > 1) ? $clog2(SF) : 1;
  localparam int NFW = (NF > 1) ? $clog2(NF) : 1;
  localparam int KW = (STEPS > 1) ? $clog2(STEPS) : 1;

  // Schedule: word k, LSB first, holds the column fold of step k in [SFW-1:0], `last` (the last step of its row
  // fold) at SFW and `valid` (0 for the dummy step of an empty row fold) at SFW+1; steps in (nf, sf) order.
  (* rom_style = "block" *) logic [SFW+1:0] smem[STEPS];
  // Thresholds, stored by bnn_mac_core: word nf holds T[nf*PE+p][t] at bit (p*NTHRES+t)*ACCBITS.
  // Weights: word k holds the tile of step k, W[nf*PE+p][sf*SIMD+s] at bit (p*SIMD+s)*WBITS (dummy: ignored).
  (* rom_style = "block" *) logic [PE*SIMD*WBITS-1:0] wmem[STEPS];
  // Two banks as two arrays: the bank select is then a read mux, not an address adder.
  logic [SIMD*IBITS-1:0] ibuf0[SF], ibuf1[SF];

  initial begin
    $readmemh(SCHED_FILE, smem);
    $readmemh(WEIGHT_FILE, wmem);
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

  // Every lane multiplies the same input columns. A dummy step adds nothing: its all-zero weight word would
  // still match zero input codes in XNOR mode.
  bnn_mac_core #(
      .PE(PE),
      .SIMD(SIMD),
      .NF(NF),
      .IBITS(IBITS),
      .WBITS(WBITS),
      .ACCBITS(ACCBITS),
      .OBITS(OBITS),
      .XNOR(XNOR),
      .I_SIGNED(I_SIGNED),
      .I_BIPOLAR(I_BIPOLAR),
      .W_SIGNED(W_SIGNED),
      .W_BIPOLAR(W_BIPOLAR),
      .NTHRES(NTHRES),
      .ACTVAL(ACTVAL),
      .THRESH_FILE(THRESH_FILE),
      .NAME("bnn_mvau_sparse")
  ) u_core (
      .clk(clk),
      .rst_n(rst_n),
      .advance(advance),
      .v2(v2),
      .first2(first2),
      .last2(last2),
      .add2(valid2),
      .n2(n2),
      .x2({PE{x2}}),
      .w2(w2),
      .out_data(out_data),
      .out_valid(out_valid),
      .out_ready(out_ready)
  );
endmodule
