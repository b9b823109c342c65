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

  // Number of thresholds at or below x, summed as a balanced tree (log2 depth): a chain of NTHRES (up to 255)
  // additions is a long critical path and overflows the call stack of Yosys' abc9 in the WebAssembly build.
  function automatic logic [TBITS-1:0] count_ge(input logic signed [TBITS-1:0] x,
                                                input logic [NTHRES*TBITS-1:0] thr);
    logic [TBITS-1:0] node[NTHRES];
    int n;
    for (int t = 0; t < NTHRES; t++) node[t] = TBITS'(x >= $signed(thr[t*TBITS+:TBITS]));
    n = NTHRES;
    while (n > 1) begin
      for (int i = 0; i < n / 2; i++) node[i] = node[2*i] + node[2*i+1];
      if (n % 2 == 1) node[n/2] = node[n-1];
      n = (n + 1) / 2;
    end
    return node[0];
  endfunction

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      cf <= '0;
      out_valid <= 1'b0;
    end else begin
      if (out_valid && out_ready) out_valid <= 1'b0;
      if (in_valid && in_ready) begin
        for (int p = 0; p < PE; p++) begin
          logic signed [TBITS-1:0] x;
          x = I_SIGNED ? TBITS'($signed(in_data[p*IBITS+:IBITS])) : TBITS'({1'b0, in_data[p*IBITS+:IBITS]});
          out_data[p*OBITS+:OBITS] <= OBITS'(TBITS'(ACTVAL) + count_ge(x, tmem[cf][p*NTHRES*TBITS+:NTHRES*TBITS]));
        end
        out_valid <= 1'b1;
        cf <= (cf == CFW'(CF - 1)) ? '0 : cf + 1'b1;
      end
    end
  end
endmodule
