// Pooling (FINN's Pool) over the windows of a depthwise sliding-window generator (bnn_swg DEPTHWISE = 1, SIMD = PE),
// which emits them in FINN's depthwise layout (OH, OW, C/PE, K2, PE): every K2 consecutive input words are one
// channel fold's window, element p (BITS) of a word at bit p*BITS. After the K2-th word of a window it emits one
// word of PE results, result p (OBITS) at bit p*OBITS:
//   FUNC "max": the maximum of each element over the window (two's complement if SIGNED); OBITS = BITS;
//   FUNC "sum": the sum over the window, shifted right arithmetically by SHIFT (a floor division by 2^SHIFT), in
//               OBITS bits: FINN's AccPool (SHIFT = 0), QuantAvgPool (FINN's shift) and AvgPool over a window of
//               2^SHIFT (the floor of the mean). With BIPOLAR the 0/1 codes are summed as -1/+1 (a maximum
//               compares the codes, in the same order as their values).
// Only PE running values: the window of one channel fold ends before the next begins. One input word per cycle, so
// cycles per frame = input words (OH*OW*C/PE*K2). A result is out one cycle after its window's last word is in
// (latency as a layer registering its result straight from its input: hw/layers.py PIPELINE_STAGES = 0); the
// compare or add of a word with the running value, and the select, are the only logic before a register.
module bnn_pool #(
    parameter int BITS = 1,
    parameter int OBITS = 1,
    parameter bit SIGNED = 1'b0,
    parameter bit BIPOLAR = 1'b0,
    parameter int PE = 1,
    parameter int K2 = 4,
    parameter FUNC = "max",
    parameter int SHIFT = 0
) (
    input  logic                clk,
    input  logic                rst_n,
    input  logic [ PE*BITS-1:0] in_data,
    input  logic                in_valid,
    output logic                in_ready,
    output logic [PE*OBITS-1:0] out_data,
    output logic                out_valid,
    input  logic                out_ready
);
  localparam bit SUM = FUNC == "sum";
  if (BITS < 1 || OBITS < 1 || PE < 1 || K2 < 1 || SHIFT < 0) begin : g_bad_shape
    $error("bnn_pool: BITS (%0d), OBITS (%0d), PE (%0d), K2 (%0d) must be at least 1, SHIFT (%0d) at least 0",
           BITS, OBITS, PE, K2, SHIFT);
  end
  if (FUNC != "max" && FUNC != "sum") begin : g_bad_func
    $error("bnn_pool: FUNC must be \"max\" or \"sum\" (got \"%s\")", FUNC);
  end
  if (!SUM && (OBITS != BITS || SHIFT != 0)) begin : g_bad_max
    $error("bnn_pool: a maximum keeps its input's width (OBITS %0d, BITS %0d) and has no SHIFT (%0d)", OBITS, BITS,
           SHIFT);
  end

  // Running values are signed, one bit wider than the widest sum (or element), whatever the input's kind.
  localparam bit VALUES = SUM && BIPOLAR;  // -1/+1 values, not 0/1 codes
  localparam int ACCW = (VALUES ? 2 : BITS) + (SUM ? $clog2(K2) : 0) + 1;
  localparam int KCW = $clog2(K2 + 1);

  function automatic logic signed [ACCW-1:0] value(input logic [BITS-1:0] code);
    if (VALUES) return code[0] ? ACCW'(1) : -ACCW'(1);
    if (SIGNED) return ACCW'($signed(code));
    return ACCW'(code);
  endfunction

  logic signed [ACCW-1:0] acc[PE];
  logic [KCW-1:0] k;  // words of the current window taken so far
  logic first, final_word;  // k == 0 and k == K2 - 1, kept as registers
  logic take;

  assign in_ready = !out_valid || out_ready;
  assign take = in_valid && in_ready;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      k <= '0;
      first <= 1'b1;
      final_word <= K2 == 1;
      out_valid <= 1'b0;
    end else begin
      if (out_ready) out_valid <= 1'b0;
      if (take) begin
        for (int p = 0; p < PE; p++) begin
          logic signed [ACCW-1:0] v, nxt;
          v = value(in_data[p*BITS+:BITS]);
          if (first) nxt = v;
          else if (SUM) nxt = acc[p] + v;
          else nxt = (v > acc[p]) ? v : acc[p];
          acc[p] <= nxt;
          if (final_word) out_data[p*OBITS+:OBITS] <= OBITS'(nxt >>> SHIFT);
        end
        if (final_word) begin
          out_valid <= 1'b1;
          k <= '0;
          first <= 1'b1;
          final_word <= K2 == 1;
        end else begin
          k <= k + 1'b1;
          first <= 1'b0;
          final_word <= k == KCW'(K2 - 2);
        end
      end
    end
  end
endmodule
