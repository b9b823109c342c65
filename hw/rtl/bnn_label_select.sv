// Top-1 label selection: consumes LABELS values, PE per cycle, and emits the index of the first maximum
// (the lower index wins ties, as ONNX TopK and FINN's LabelSelect do). An input register comes first, so that
// the compare chain starts at a flip-flop, not behind the FIFO's read mux; it costs a cycle of latency.
module bnn_label_select #(
    parameter int LABELS = 10,
    parameter int PE = 1,
    parameter int IBITS = 8,
    parameter bit I_SIGNED = 1'b0,
    parameter int OBITS = 4,
    parameter bit SLOW = 1'b0  // two cycles per input word: the compare gets a cycle of its own
) (
    input  logic                clk,
    input  logic                rst_n,
    input  logic [PE*IBITS-1:0] in_data,
    input  logic                in_valid,
    output logic                in_ready,
    output logic [   OBITS-1:0] out_data,
    output logic                out_valid,
    input  logic                out_ready
);
  localparam int NF = LABELS / PE;
  localparam int NFW = (NF > 1) ? $clog2(NF) : 1;
  localparam int VW = IBITS + 1;

  if (LABELS < 1 || PE < 1 || IBITS < 1 || OBITS < 1) begin : g_bad_shape
    $error("bnn_label_select: LABELS (%0d), PE (%0d), IBITS (%0d) and OBITS (%0d) must be at least 1", LABELS, PE,
           IBITS, OBITS);
  end
  if (LABELS % PE != 0) begin : g_bad_pe
    $error("bnn_label_select: PE (%0d) must divide LABELS (%0d)", PE, LABELS);
  end
  if (SLOW && PE != 1) begin : g_bad_slow
    $error("bnn_label_select: SLOW needs PE = 1 (PE is %0d)", PE);
  end
  if (LABELS > (1 << OBITS)) begin : g_bad_obits
    $error("bnn_label_select: OBITS (%0d) too narrow for LABELS (%0d) indices", OBITS, LABELS);
  end

  logic [NFW-1:0] fold;
  logic signed [VW-1:0] best;
  logic [OBITS-1:0] best_idx;
  logic [PE*IBITS-1:0] xq;  // the input register
  logic vq, step;

  // With SLOW, a word sits in xq for two cycles: in the first (phase 0) only the compares are made and
  // registered, in the second they pick the new best. The running maximum then has no loop of compare and
  // select in one cycle; the generator sets SLOW where twice the cycles still keep to the design's II.
  logic phase;
  logic [PE-1:0] wins;  // with SLOW: xq's element beats the best so far (registered in phase 0)
  logic signed [VW-1:0] x0;
  assign x0 = I_SIGNED ? VW'($signed(xq[IBITS-1:0])) : VW'({1'b0, xq[IBITS-1:0]});
  assign step = vq && (!out_valid || out_ready) && (!SLOW || phase);
  assign in_ready = !vq || step;
  always_ff @(posedge clk) begin
    if (!rst_n || !SLOW) phase <= 1'b0;
    else if (vq && (!out_valid || out_ready)) phase <= !phase;
  end

  always_ff @(posedge clk) begin
    if (!rst_n) vq <= 1'b0;
    else if (in_ready) vq <= in_valid;
    if (in_ready) xq <= in_data;
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      fold <= '0;
      out_valid <= 1'b0;
    end else begin
      if (out_valid && out_ready) out_valid <= 1'b0;
      if (SLOW && !phase) wins <= PE'((fold == '0) || x0 > best);  // SLOW (PE = 1): the compare alone
      if (step) begin
        logic signed [VW-1:0] b;
        logic [OBITS-1:0] bi;
        // At the first fold the first element wins whatever best holds: compared with the register itself,
        // not with a fold-dependent mux of it, the compare starts a LUT level earlier.
        b  = best;
        bi = best_idx;
        for (int p = 0; p < PE; p++) begin
          logic signed [VW-1:0] v;
          v = I_SIGNED ? VW'($signed(xq[p*IBITS+:IBITS])) : VW'({1'b0, xq[p*IBITS+:IBITS]});
          if (SLOW ? wins[0] : ((fold == '0 && p == 0) || v > b)) begin
            b  = v;
            bi = OBITS'(fold * PE + p);
          end
        end
        best <= b;
        best_idx <= bi;
        if (fold == NFW'(NF - 1)) begin
          fold <= '0;
          out_data <= bi;
          out_valid <= 1'b1;
        end else begin
          fold <= fold + 1'b1;
        end
      end
    end
  end
endmodule
