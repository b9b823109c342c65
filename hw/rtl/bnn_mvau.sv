// Matrix-vector-activation unit, folded: PE output rows and SIMD input columns per cycle.
// y[r] = ACTVAL + #{t : acc[r] >= T[r][t]}, acc[r] = sum_c W[r][c] * x[c]  (NTHRES = 0: y = acc)
// XNOR = 1: x and W are {0,1} codes of {-1,+1} and acc is the popcount of matches (FINN's binaryXnorMode).
// Input: MW/SIMD words per vector, x[sf*SIMD+s] (IBITS) at bit s*IBITS of word sf. Output: MH/PE words, y[nf*PE+p]
// (OBITS) at bit p*OBITS of word nf. One frame takes MW/SIMD * MH/PE cycles; the input vector is consumed during
// the first row fold and replayed from a buffer for the others. Valid/ready streams; the whole pipeline stalls on
// output back-pressure.
// This wrapper fetches the operands (stages 0 to 2); bnn_mac_core adds, accumulates and thresholds (3 to 5).
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
  // The core checks the widths, NTHRES and XNOR.

  localparam int SF = MW / SIMD;
  localparam int NF = MH / PE;
  localparam int WDEPTH = SF * NF;
  localparam int SFW = (SF > 1) ? $clog2(SF) : 1;
  localparam int NFW = (NF > 1) ? $clog2(NF) : 1;
  localparam int WAW = (WDEPTH > 1) ? $clog2(WDEPTH) : 1;

  // Thresholds, stored by bnn_mac_core: word nf holds T[nf*PE+p][t] at bit (p*NTHRES+t)*ACCBITS.
  // Weights: word nf*SF+sf holds W[nf*PE+p][sf*SIMD+s] at bit (p*SIMD+s)*WBITS.
  (* rom_style = "block" *) logic [PE*SIMD*WBITS-1:0] wmem[WDEPTH];
  logic [SIMD*IBITS-1:0] ibuf[SF];

  initial $readmemh(WEIGHT_FILE, wmem);

  logic [SFW-1:0] sf;
  logic [NFW-1:0] nf;
  logic [WAW-1:0] waddr;  // nf*SF+sf, kept as a counter (no multiplier)
  logic advance;
  logic take;  // stage 0 issues one (nf, sf) step this cycle
  logic [SIMD*IBITS-1:0] x0;

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

  // Every lane multiplies the same input columns.
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
      .NAME("bnn_mvau")
  ) u_core (
      .clk(clk),
      .rst_n(rst_n),
      .advance(advance),
      .v2(v2),
      .first2(first2),
      .last2(last2),
      .add2(1'b1),
      .n2(n2),
      .x2({PE{x2}}),
      .w2(w2),
      .out_data(out_data),
      .out_valid(out_valid),
      .out_ready(out_ready)
  );
endmodule
