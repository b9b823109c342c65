// Max-pool over windows from the sliding-window generator: per output pixel it reads K2 x C elements in
// (k, c) order, PE per word, and emits the C channel maxima, PE per word, during the last window position.
module bnn_pool #(
    parameter int BITS = 1,
    parameter bit SIGNED = 1'b0,
    parameter int C = 1,
    parameter int PE = 1,
    parameter int K2 = 4
) (
    input  logic               clk,
    input  logic               rst_n,
    input  logic [PE*BITS-1:0] in_data,
    input  logic               in_valid,
    output logic               in_ready,
    output logic [PE*BITS-1:0] out_data,
    output logic               out_valid,
    input  logic               out_ready
);
  localparam int CF = C / PE;

  logic [BITS-1:0] mx[C];
  int k, cf;

  assign in_ready = !out_valid || out_ready;

  function automatic logic greater(input logic [BITS-1:0] a, input logic [BITS-1:0] b);
    if (SIGNED) return $signed(a) > $signed(b);
    return a > b;
  endfunction

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      k <= 0;
      cf <= 0;
      out_valid <= 1'b0;
    end else begin
      if (out_valid && out_ready) out_valid <= 1'b0;
      if (in_valid && in_ready) begin
        for (int p = 0; p < PE; p++) begin
          logic [BITS-1:0] v, cur;
          v = in_data[p*BITS+:BITS];
          cur = (k == 0 || greater(v, mx[cf*PE+p])) ? v : mx[cf*PE+p];
          mx[cf*PE+p] <= cur;
          out_data[p*BITS+:BITS] <= cur;
        end
        if (k == K2 - 1) out_valid <= 1'b1;
        if (cf != CF - 1) cf <= cf + 1;
        else begin
          cf <= 0;
          k  <= (k != K2 - 1) ? k + 1 : 0;
        end
      end
    end
  end
endmodule
