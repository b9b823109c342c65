// Multi-threshold activation over C channels, PE channels per cycle:
// y[c] = ACTVAL + #{t : x[c] >= T[c][t]}. One frame of C channels takes C/PE cycles.
module bnn_thresholding #(
    parameter int C = 8,
    parameter int PE = 1,
    parameter int IBITS = 8,
    parameter bit I_SIGNED = 1'b0,
    parameter int TBITS = 10,  // signed threshold / comparison width
    parameter int OBITS = 1,
    parameter int NTHRES = 1,
    parameter int ACTVAL = 0,
    parameter THRESH_FILE = ""
) (
    input  logic                clk,
    input  logic                rst_n,
    input  logic [PE*IBITS-1:0] in_data,
    input  logic                in_valid,
    output logic                in_ready,
    output logic [PE*OBITS-1:0] out_data,
    output logic                out_valid,
    input  logic                out_ready
);
  localparam int CF = C / PE;
  localparam int CFW = (CF > 1) ? $clog2(CF) : 1;

  // Word cf holds T[cf*PE+p][t] at bit (p*NTHRES+t)*TBITS.
  logic [PE*NTHRES*TBITS-1:0] tmem[CF];
  initial $readmemh(THRESH_FILE, tmem);

  logic [CFW-1:0] cf;
  assign in_ready = !out_valid || out_ready;

  // The thresholds of the current channel fold, counted per channel by bnn_count_ge.
  logic [PE*NTHRES*TBITS-1:0] thr;
  logic [PE*OBITS-1:0] y;

  assign thr = tmem[cf];

  for (genvar p = 0; p < PE; p++) begin : g_channel
    logic signed [TBITS-1:0] x;
    logic [TBITS-1:0] count;
    assign x = I_SIGNED ? TBITS'($signed(in_data[p*IBITS+:IBITS])) : TBITS'({1'b0, in_data[p*IBITS+:IBITS]});
    bnn_count_ge #(
        .N   (NTHRES),
        .BITS(TBITS)
    ) u_count (
        .x    (x),
        .thr  (thr[p*NTHRES*TBITS+:NTHRES*TBITS]),
        .count(count)
    );
    assign y[p*OBITS+:OBITS] = OBITS'(TBITS'(ACTVAL) + count);
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      cf <= '0;
      out_valid <= 1'b0;
    end else begin
      if (out_valid && out_ready) out_valid <= 1'b0;
      if (in_valid && in_ready) begin
        out_data <= y;
        out_valid <= 1'b1;
        cf <= (cf == CFW'(CF - 1)) ? '0 : cf + 1'b1;
      end
    end
  end
endmodule
