// Threshold count of a multi-threshold activation: count = #{t < N : x >= thr[t]}, x and the thresholds signed
// BITS-bit (threshold t at bit t*BITS), the count in BITS bits (so N < 2^BITS). Combinational: N comparators
// summed by a balanced adder tree. The one home of the compare for every layer that thresholds (the MAC core,
// bnn_thresholding); the caller adds ACTVAL.
module bnn_count_ge #(
    parameter int N = 1,
    parameter int BITS = 8
) (
    input  logic signed [  BITS-1:0] x,
    input  logic        [N*BITS-1:0] thr,
    output logic        [  BITS-1:0] count
);
  logic [N*BITS-1:0] hit;

  for (genvar t = 0; t < N; t++) begin : g_cmp
    assign hit[t*BITS+:BITS] = BITS'(x >= $signed(thr[t*BITS+:BITS]));
  end

  bnn_adder_tree #(
      .N   (N),
      .BITS(BITS)
  ) u_sum (
      .terms(hit),
      .sum  (count)
  );
endmodule
