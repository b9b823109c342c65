// Zero padding of a feature map (FINN's FMPadding): reads H x W pixels of C channels in raster order, SIMD channels
// per word, and emits (PT + H + PB) x (PL + W + PR) pixels in raster order: the border words are zero (made here,
// without input), the inner ones are the input words in place. One output word per cycle while not stalled.
module bnn_fmpad #(
    parameter int BITS = 1,
    parameter int SIMD = 1,
    parameter int C = 1,
    parameter int H = 4,
    parameter int W = 4,
    parameter int PT = 1,
    parameter int PL = 1,
    parameter int PB = 1,
    parameter int PR = 1
) (
    input  logic                 clk,
    input  logic                 rst_n,
    input  logic [SIMD*BITS-1:0] in_data,
    input  logic                 in_valid,
    output logic                 in_ready,
    output logic [SIMD*BITS-1:0] out_data,
    output logic                 out_valid,
    input  logic                 out_ready
);
  localparam int CF = C / SIMD;
  localparam int OH = PT + H + PB;
  localparam int OW = PL + W + PR;
  localparam int YW = (OH > 1) ? $clog2(OH) : 1;
  localparam int XW = (OW > 1) ? $clog2(OW) : 1;
  localparam int FW = (CF > 1) ? $clog2(CF) : 1;

  logic [YW-1:0] y;  // output position: row, column, channel fold
  logic [XW-1:0] x;
  logic [FW-1:0] cf;
  logic advance, interior, emit;

  assign advance = !out_valid || out_ready;
  // compared as 32-bit numbers: PT + H = OH does not fit in YW bits
  assign interior = (int'(y) >= PT) && (int'(y) < PT + H) && (int'(x) >= PL) && (int'(x) < PL + W);
  assign in_ready = advance && interior;
  assign emit = advance && (!interior || in_valid);

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      y <= '0;
      x <= '0;
      cf <= '0;
      out_valid <= 1'b0;
    end else begin
      if (advance) out_valid <= 1'b0;
      if (emit) begin
        out_data  <= interior ? in_data : '0;
        out_valid <= 1'b1;
        if (cf != FW'(CF - 1)) cf <= cf + 1'b1;
        else begin
          cf <= '0;
          if (x != XW'(OW - 1)) x <= x + 1'b1;
          else begin
            x <= '0;
            y <= (y != YW'(OH - 1)) ? y + 1'b1 : '0;
          end
        end
      end
    end
  end
endmodule
