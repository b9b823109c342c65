// Vector-vector-activation unit (FINN's VectorVectorActivation, a depthwise convolution), folded: PE channels and
// SIMD kernel positions per cycle. For every pixel and channel c < C:
// y[c] = ACTVAL + #{t : acc[c] >= T[c][t]}, acc[c] = sum_k W[c][k] * x[c][k] over the K kernel positions
// (NTHRES = 0: y = acc). XNOR = 1: x and W are {0,1} codes of {-1,+1} and acc is the popcount of matches.
// Input: per pixel C/PE channel folds of K/SIMD words each (nf outer, sf inner); word (nf, sf) holds
// x[nf*PE+p][sf*SIMD+s] (IBITS) at bit (s*PE+p)*IBITS, channels innermost: the order (C/PE, K, PE) of FINN's
// depthwise sliding window. Weights: word nf*SF+sf holds W[nf*PE+p][sf*SIMD+s] (WBITS) at bit (p*SIMD+s)*WBITS.
// Thresholds, stored by bnn_mac_core: word nf holds T[nf*PE+p][t] at bit (p*NTHRES+t)*ACCBITS. Output: per pixel
// C/PE words, y[nf*PE+p] (OBITS) at bit p*OBITS of word nf.
// Each input word is used once (no buffer, no replay): one word per cycle, a pixel every C/PE * K/SIMD cycles,
// pixel after pixel. Valid/ready streams; the whole pipeline stalls on output back-pressure.
// This wrapper fetches the operands (stages 0 to 2); bnn_mac_core adds, accumulates and thresholds (3 to 5).
// Pipeline as bnn_mvau's (one global enable): issue, operand and weight-RAM read, RAM output register, partial sums
// of groups of SIMD terms, accumulate, threshold into the output register: a channel fold's outputs are valid 5
// cycles after its last word is taken (hw/layers.py PIPELINE_STAGES: 4).
module bnn_vvau #(
    parameter int C = 8,
    parameter int K = 9,
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
    input  logic                     clk,
    input  logic                     rst_n,
    input  logic [PE*SIMD*IBITS-1:0] in_data,
    input  logic                     in_valid,
    output logic                     in_ready,
    output logic [     PE*OBITS-1:0] out_data,
    output logic                     out_valid,
    input  logic                     out_ready
);
  if (C < 1 || K < 1 || PE < 1 || SIMD < 1) begin : g_bad_shape
    $error("bnn_vvau: C (%0d), K (%0d), PE (%0d) and SIMD (%0d) must be at least 1", C, K, PE, SIMD);
  end
  if (K % SIMD != 0) begin : g_bad_simd
    $error("bnn_vvau: SIMD (%0d) must divide K (%0d)", SIMD, K);
  end
  if (C % PE != 0) begin : g_bad_pe
    $error("bnn_vvau: PE (%0d) must divide C (%0d)", PE, C);
  end
  // The core checks the widths, NTHRES and XNOR.

  localparam int SF = K / SIMD;
  localparam int NF = C / PE;
  localparam int WDEPTH = SF * NF;
  localparam int SFW = (SF > 1) ? $clog2(SF) : 1;
  localparam int NFW = (NF > 1) ? $clog2(NF) : 1;
  localparam int WAW = (WDEPTH > 1) ? $clog2(WDEPTH) : 1;

  (* rom_style = "block" *) logic [PE*SIMD*WBITS-1:0] wmem[WDEPTH];
  initial $readmemh(WEIGHT_FILE, wmem);

  logic [SFW-1:0] sf;
  logic [NFW-1:0] nf;
  logic [WAW-1:0] waddr;  // nf*SF+sf, kept as a counter (no multiplier)
  logic advance;
  logic take;  // stage 0 takes the input word of step (nf, sf)

  assign in_ready = advance;
  assign take = advance && in_valid;

  // Stage 1: the registered input word and the weight-RAM read. Each stage carries its step's valid flag (v),
  // whether it starts (first) or ends (last) its channel fold, and the channel fold (n) whose thresholds apply.
  logic v1, first1, last1;
  logic [NFW-1:0] n1;
  logic [PE*SIMD*IBITS-1:0] x1;
  logic [PE*SIMD*WBITS-1:0] w1;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      sf <= '0;
      nf <= '0;
      waddr <= '0;
      v1 <= 1'b0;
    end else if (advance) begin
      v1 <= take;
      if (take) begin
        x1 <= in_data;
        w1 <= wmem[waddr];
        waddr <= (waddr == WAW'(WDEPTH - 1)) ? '0 : waddr + 1'b1;
        n1 <= nf;
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

  // Stage 2: the RAM's output register. The block RAM's clock-to-out (several ns, more than a LUT level) then
  // ends here instead of starting the adder tree.
  logic v2, first2, last2;
  logic [NFW-1:0] n2;
  logic [PE*SIMD*IBITS-1:0] x2;
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

  // The stream has the channels innermost, the core wants each lane's SIMD kernel positions together: a
  // transposition of wires, no logic.
  logic [PE*SIMD*IBITS-1:0] lanes;

  for (genvar p = 0; p < PE; p++) begin : g_lane
    for (genvar s = 0; s < SIMD; s++) begin : g_pos
      assign lanes[(p*SIMD+s)*IBITS+:IBITS] = x2[(s*PE+p)*IBITS+:IBITS];
    end
  end

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
      .NAME("bnn_vvau")
  ) u_core (
      .clk(clk),
      .rst_n(rst_n),
      .advance(advance),
      .v2(v2),
      .first2(first2),
      .last2(last2),
      .add2(1'b1),
      .n2(n2),
      .x2(lanes),
      .w2(w2),
      .out_data(out_data),
      .out_valid(out_valid),
      .out_ready(out_ready)
  );
endmodule
