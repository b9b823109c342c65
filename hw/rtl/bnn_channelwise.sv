// Channelwise operation with a constant per channel (FINN's ElementwiseAdd / Sub / Mul / Max with one streamed
// input and one constant input): y[c] = x[c] OP p[c], where OP is
//   "ADD": x + p   "SUB": x - p   "RSUB": p - x (the constant is the left operand)   "MUL": x * p   "MAX": max(x, p),
// computed exactly and output as its low OBITS bits (exact wherever OBITS holds the result: the generator checks
// that FINN's output type does).
// Input: pixels of C channels, C/PE words each; word cf holds channels cf*PE .. cf*PE+PE-1, element e at bit
// e*IBITS (unsigned, two's complement with I_SIGNED, or bipolar 0/1 codes of -1/+1 with I_BIPOLAR).
// Output: the same words and element order, element e at bit e*OBITS (two's complement; read as unsigned where
// the results cannot be negative).
// Constants: word cf of PARAM_FILE holds p[cf*PE+e] at bit e*PBITS, PBITS-bit two's complement.
// One word per cycle while not stalled: C/PE cycles per pixel, so a frame of N pixels takes N * C/PE cycles.
// The output is registered straight from the input (no extra stage).
module bnn_channelwise #(
    parameter int C = 1,
    parameter int PE = 1,
    parameter int IBITS = 1,
    parameter bit I_SIGNED = 1'b0,
    parameter bit I_BIPOLAR = 1'b0,
    parameter int PBITS = 2,
    parameter int OBITS = 2,
    parameter string OP = "ADD",
    parameter PARAM_FILE = ""
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
  localparam int OPCODE = (OP == "ADD") ? 0 : (OP == "SUB") ? 1 : (OP == "RSUB") ? 2 : (OP == "MUL") ? 3 :
      (OP == "MAX") ? 4 : -1;

  if (C < 1 || PE < 1 || IBITS < 1 || PBITS < 1 || OBITS < 1) begin : g_bad_shape
    $error("bnn_channelwise: C (%0d), PE (%0d), IBITS (%0d), PBITS (%0d) and OBITS (%0d) must be at least 1", C,
           PE, IBITS, PBITS, OBITS);
  end
  if (C % PE != 0) begin : g_bad_pe
    $error("bnn_channelwise: PE (%0d) must divide C (%0d)", PE, C);
  end
  if (OPCODE < 0) begin : g_bad_op
    $error("bnn_channelwise: OP (%s) must be ADD, SUB, RSUB, MUL or MAX", OP);
  end

  localparam int CF = C / PE;
  localparam int FW = (CF > 1) ? $clog2(CF) : 1;
  localparam int XW = IBITS + 1;  // any input value as a signed number
  localparam int RW = XW + PBITS + 1;  // any result, exactly

  logic [PE*PBITS-1:0] pmem[CF];
  initial $readmemh(PARAM_FILE, pmem);

  logic [FW-1:0] cf;
  assign in_ready = !out_valid || out_ready;

  function automatic logic signed [RW-1:0] apply(input logic [IBITS-1:0] code, input logic [PBITS-1:0] pcode);
    logic signed [XW-1:0] x;
    logic signed [PBITS-1:0] p;
    logic signed [XW+PBITS-1:0] product;
    if (I_BIPOLAR) x = code[0] ? XW'(1) : -XW'(1);
    else if (I_SIGNED) x = XW'($signed(code));
    else x = XW'(code);
    p = $signed(pcode);
    product = x * p;
    case (OPCODE)
      0: return RW'(x) + RW'(p);
      1: return RW'(x) - RW'(p);
      2: return RW'(p) - RW'(x);
      3: return RW'(product);
      default: return (RW'(x) > RW'(p)) ? RW'(x) : RW'(p);
    endcase
  endfunction

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      cf <= '0;
      out_valid <= 1'b0;
    end else begin
      if (out_valid && out_ready) out_valid <= 1'b0;
      if (in_valid && in_ready) begin
        for (int e = 0; e < PE; e++)
          out_data[e*OBITS+:OBITS] <= OBITS'(apply(in_data[e*IBITS+:IBITS], pmem[cf][e*PBITS+:PBITS]));
        out_valid <= 1'b1;
        cf <= (cf == FW'(CF - 1)) ? '0 : cf + 1'b1;
      end
    end
  end
endmodule
