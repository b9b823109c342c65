// Stream data-width converter: IN elements of BITS per input word to OUT elements per output word,
// element order preserved (element 0 in the least significant bits), any IN/OUT ratio.
module bnn_dwc #(
    parameter int BITS = 1,
    parameter int IN = 1,
    parameter int OUT = 1
) (
    input  logic                clk,
    input  logic                rst_n,
    input  logic [ IN*BITS-1:0] in_data,
    input  logic                in_valid,
    output logic                in_ready,
    output logic [OUT*BITS-1:0] out_data,
    output logic                out_valid,
    input  logic                out_ready
);
  localparam int CAP = IN + OUT;
  localparam int CW = $clog2(2 * CAP + 1);  // room for count + IN before the comparison

  logic [CAP*BITS-1:0] held;
  logic [CW-1:0] count;
  logic take, give;

  assign out_valid = count >= CW'(OUT);
  assign out_data = held[OUT*BITS-1:0];
  assign give = out_valid && out_ready;
  assign in_ready = (count - (give ? CW'(OUT) : '0)) + CW'(IN) <= CW'(CAP);
  assign take = in_valid && in_ready;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      count <= '0;
      held  <= '0;
    end else begin
      logic [CAP*BITS-1:0] h;
      logic [CW-1:0] c;
      h = held;
      c = count;
      if (give) begin
        h = h >> (OUT * BITS);
        c = c - CW'(OUT);
      end
      if (take) begin
        h = h | ((CAP * BITS)'(in_data) << (c * BITS));
        c = c + CW'(IN);
      end
      held  <= h;
      count <= c;
    end
  end
endmodule
