// Global accumulation pool (FINN's GlobalAccPool; the 1/PIXELS of a global average pool is a separate Mul):
// y[c] = sum over the PIXELS pixels of a frame of x[pixel][c].
// Input: PIXELS pixels in raster order, each C/PE words; word cf holds channels cf*PE .. cf*PE+PE-1, element p at
// bit p*IBITS (unsigned, two's complement with I_SIGNED, or bipolar 0/1 codes of -1/+1 with I_BIPOLAR).
// Output: C/PE words per frame, the same channel order, element p at bit p*OBITS, OBITS-bit two's complement
// (read as unsigned where the sums cannot be negative); the sums are exact wherever OBITS holds them (the
// generator checks that FINN's output type does), else they wrap.
// One input word per cycle while not stalled: PIXELS * C/PE cycles per frame. An output word leaves with the
// last pixel's word of its channel fold, so FINN's estimate (which adds C/PE cycles for an output loop of its
// own) is C/PE cycles more than this takes. The output is registered straight from the input (no extra stage).
// The partial sums of the C/PE channel folds wait in a C/PE-entry memory that is read one word ahead with a
// registered read, as a block RAM reads; with C/PE = 1 a register holds them.
module bnn_global_acc_pool #(
    parameter int C = 1,
    parameter int PE = 1,
    parameter int PIXELS = 4,
    parameter int IBITS = 1,
    parameter bit I_SIGNED = 1'b0,
    parameter bit I_BIPOLAR = 1'b0,
    parameter int OBITS = 3
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
  if (C < 1 || PE < 1 || PIXELS < 1 || IBITS < 1 || OBITS < 1) begin : g_bad_shape
    $error("bnn_global_acc_pool: C (%0d), PE (%0d), PIXELS (%0d), IBITS (%0d) and OBITS (%0d) must be at least 1",
           C, PE, PIXELS, IBITS, OBITS);
  end
  if (C % PE != 0) begin : g_bad_pe
    $error("bnn_global_acc_pool: PE (%0d) must divide C (%0d)", PE, C);
  end
  if (OBITS < IBITS) begin : g_bad_obits
    $error("bnn_global_acc_pool: OBITS (%0d) must be at least IBITS (%0d)", OBITS, IBITS);
  end

  localparam int CF = C / PE;
  localparam int FW = (CF > 1) ? $clog2(CF) : 1;
  localparam int PW = (PIXELS > 1) ? $clog2(PIXELS) : 1;

  logic [FW-1:0] cf, cf_next;
  logic [PW-1:0] pix;
  logic first, last, take;
  logic [PE*OBITS-1:0] prev;  // the sums of channel fold cf over the pixels before this one (when !first)
  logic [PE*OBITS-1:0] sum;

  assign in_ready = !out_valid || out_ready;
  assign take = in_valid && in_ready;
  assign cf_next = (cf == FW'(CF - 1)) ? '0 : cf + 1'b1;
  assign first = (pix == '0);
  assign last = (pix == PW'(PIXELS - 1));

  function automatic logic [OBITS-1:0] value(input logic [IBITS-1:0] code);
    if (I_BIPOLAR) return code[0] ? OBITS'(1) : -OBITS'(1);
    if (I_SIGNED) return OBITS'($signed(code));
    return OBITS'(code);
  endfunction

  always_comb begin
    for (int p = 0; p < PE; p++)
      sum[p*OBITS+:OBITS] = value(in_data[p*IBITS+:IBITS]) + (first ? '0 : prev[p*OBITS+:OBITS]);
  end

  if (CF > 1) begin : g_memory
    // Written at fold cf, read at the next fold: the read never meets the write of the same cycle (CF > 1), and the
    // entry it reads was written CF - 1 takes earlier.
    logic [PE*OBITS-1:0] partial[CF];
    always_ff @(posedge clk) begin
      if (take) begin
        partial[cf] <= sum;
        prev <= partial[cf_next];
      end
    end
  end else begin : g_register
    always_ff @(posedge clk) begin
      if (take) prev <= sum;
    end
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      cf <= '0;
      pix <= '0;
      out_valid <= 1'b0;
    end else begin
      if (out_valid && out_ready) out_valid <= 1'b0;
      if (take) begin
        if (last) begin
          out_data  <= sum;
          out_valid <= 1'b1;
        end
        cf <= cf_next;
        if (cf == FW'(CF - 1)) pix <= last ? '0 : pix + 1'b1;
      end
    end
  end
endmodule
