// UART transmitter, 8 data bits, no parity, one stop bit; the line idles high.
module bnn_uart_tx #(
    parameter int CLKS_PER_BIT = 434  // clock / baud rate, e.g. 50 MHz / 115200
) (
    input  logic       clk,
    input  logic       rst_n,
    input  logic [7:0] data,
    input  logic       valid,
    output logic       ready,
    output logic       tx
);
  if (CLKS_PER_BIT < 2) $error("bnn_uart_tx: CLKS_PER_BIT (%0d) must be at least 2", CLKS_PER_BIT);
  localparam int CW = $clog2(CLKS_PER_BIT + 1);

  logic [9:0] shift;  // stop bit, data (LSB first), start bit
  logic [3:0] bits;
  logic [CW-1:0] count;

  assign ready = (bits == '0);

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      tx <= 1'b1;
      bits <= '0;
      count <= '0;
    end else if (bits == '0) begin
      if (valid) begin
        shift <= {1'b1, data, 1'b0};
        bits <= 4'd10;
        count <= '0;
      end
    end else if (count == CW'(CLKS_PER_BIT - 1)) begin
      count <= '0;
      bits <= bits - 1'b1;
      shift <= {1'b1, shift[9:1]};
    end else begin
      count <= count + 1'b1;
    end
    if (rst_n && bits != '0) tx <= shift[0];
    else if (rst_n) tx <= 1'b1;
  end
endmodule
