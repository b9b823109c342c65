// Balanced adder tree: sum = terms[0] + ... + terms[N-1] modulo 2^BITS (two's complement, so signed and unsigned
// terms alike); term i at bit i*BITS. Combinational, ceil(log2 N) adder levels: a linear chain of N additions is
// a long critical path, and its depth overflows the call stack of Yosys' LUT mapping (abc9) in the WebAssembly
// build. The one home of that tree: the MAC core's group and accumulate stages and the threshold count use it.
module bnn_adder_tree #(
    parameter int N = 2,
    parameter int BITS = 8
) (
    input  logic [N*BITS-1:0] terms,
    output logic [  BITS-1:0] sum
);
  if (N < 1 || BITS < 1) begin : g_bad_shape
    $error("bnn_adder_tree: N (%0d) and BITS (%0d) must be at least 1", N, BITS);
  end

  function automatic logic [BITS-1:0] tree(input logic [N*BITS-1:0] v);
    logic [BITS-1:0] node[N];
    int n;
    for (int i = 0; i < N; i++) node[i] = v[i*BITS+:BITS];
    n = N;
    while (n > 1) begin
      for (int i = 0; i < n / 2; i++) node[i] = node[2*i] + node[2*i+1];
      if (n % 2 == 1) node[n/2] = node[n-1];
      n = (n + 1) / 2;
    end
    return node[0];
  endfunction

  assign sum = tree(terms);
endmodule
