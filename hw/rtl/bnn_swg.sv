// Sliding-window generator (FINN's ConvolutionInputGenerator, M = 1): reads H x W pixels of C channels in raster
// order, SIMD channels per word (word (y*W + x)*CF + cf holds channels cf*SIMD.. at bit s*BITS, CF = C/SIMD), and
// emits, for every output pixel (oy, ox) in raster order, the KH x KW window at rows oy*SH + ky*DH and columns
// ox*SW + kx*DW, SIMD channels per word:
//   DEPTHWISE = 0: words in (ky, kx, cf) order (FINN's im2col order);
//   DEPTHWISE = 1: words in (cf, ky, kx) order, each channel fold's whole window in turn (FINN's depthwise layout
//                  (OH, OW, C/SIMD, KH, KW, SIMD), what a pool or a vector-vector unit with PE = SIMD reads).
// PAR = 1 (FINN's parallel_window) emits a whole window per word, (cf) order, element (ky*KW + kx)*SIMD + s of
// word cf; both orders are then this one (FINN allows SIMD < C there only for depthwise or 1 x 1 windows).
// 1D windows are the case H = 1 (or W = 1) with KH = 1 (or KW = 1). Padding is a bnn_fmpad in front.
// Buffers two whole frames (two banks of H*W*CF words): one is written while the other is read. Cycles per frame
// in steady state: max(H*W*CF, OH*OW*KH*KW*CF/(PAR ? KH*KW : 1)), one word in and one word out per cycle.
// Timing: the read address is a register of its own, stepped by constant strides (no multiplier) through a
// one-hot select that is itself a register, and the memory is read into out_data, a registered read port that maps
// to block RAM; PAR keeps one copy of the memory per window position, each with one read port. A frame's first
// word is out one cycle after its last word is in (latency as a layer registering its result straight from its
// input: hw/layers.py PIPELINE_STAGES = 0).
module bnn_swg #(
    parameter int BITS = 1,
    parameter int SIMD = 1,
    parameter int C = 1,
    parameter int H = 4,
    parameter int W = 4,
    parameter int KH = 3,
    parameter int KW = 3,
    parameter int SH = 1,
    parameter int SW = 1,
    parameter int DH = 1,
    parameter int DW = 1,
    parameter int OH = 2,
    parameter int OW = 2,
    parameter bit PAR = 1'b0,
    parameter bit DEPTHWISE = 1'b0
) (
    input  logic                                   clk,
    input  logic                                   rst_n,
    input  logic [                SIMD*BITS-1:0] in_data,
    input  logic                                   in_valid,
    output logic                                   in_ready,
    output logic [(PAR ? KH*KW : 1)*SIMD*BITS-1:0] out_data,
    output logic                                   out_valid,
    input  logic                                   out_ready
);
  if (SIMD < 1 || C % SIMD != 0) begin : g_bad_simd
    $error("bnn_swg: SIMD (%0d) must divide C (%0d)", SIMD, C);
  end
  if (OH != (H - DH * (KH - 1) - 1) / SH + 1 || OW != (W - DW * (KW - 1) - 1) / SW + 1 || OH < 1 || OW < 1)
  begin : g_bad_out
    $error("bnn_swg: OH x OW (%0d x %0d) is not the output of a %0d x %0d image", OH, OW, H, W);
  end

  localparam int CF = C / SIMD;
  localparam int WORDS = H * W * CF;  // one bank
  localparam int DEPTH = 2 * WORDS;
  localparam int AW = $clog2(DEPTH);
  localparam int KP = PAR ? KH * KW : 1;  // words read per output word
  localparam int WIDTH = SIMD * BITS;

  // The read address walks NL nested loops, innermost first: loop i makes LOOP_N[i] passes, each LOOP_S[i] words on
  // from the previous one.
  localparam int NL = 5;
  typedef int loops_t[NL];
  localparam loops_t LOOP_N = PAR ? '{CF, 1, 1, OW, OH} : DEPTHWISE ? '{KW, KH, CF, OW, OH} : '{CF, KW, KH, OW, OH};
  localparam loops_t LOOP_S = PAR ? '{1, 0, 0, SW * CF, SH * W * CF}
                            : DEPTHWISE ? '{DW * CF, DH * W * CF, 1, SW * CF, SH * W * CF}
                            : '{1, DW * CF, DH * W * CF, SW * CF, SH * W * CF};
  function automatic int max_n();
    int m = 1;
    for (int i = 0; i < NL; i++) m = (LOOP_N[i] > m) ? LOOP_N[i] : m;
    return m;
  endfunction
  // PAR: word offset of window position k = ky*KW + kx from the window's first word.
  function automatic int koff(input int k);
    return PAR ? ((k / KW) * DH * W + (k % KW) * DW) * CF : 0;
  endfunction
  localparam int CW = $clog2(max_n() + 1);
  function automatic logic [NL-1:0] last_init();
    logic [NL-1:0] l;
    for (int i = 0; i < NL; i++) l[i] = LOOP_N[i] == 1;
    return l;
  endfunction
  // The loop that steps after loops in these last-pass states: the innermost one not in its last pass.
  function automatic logic [NL:0] select(input logic [NL-1:0] l);
    logic [NL:0] s;
    logic all_last;
    all_last = 1'b1;
    for (int i = 0; i < NL; i++) begin
      s[i] = all_last && !l[i];
      all_last = all_last && l[i];
    end
    s[NL] = all_last;
    return s;
  endfunction

  logic [AW-1:0] waddr;  // runs over both banks: bank 1 is words WORDS..DEPTH-1
  logic wbank, rbank;
  logic [1:0] full;
  logic [CW-1:0] cnt[NL];
  logic [NL-1:0] last;  // loop i is in its last pass (cnt[i] == LOOP_N[i] - 1), kept as a register
  logic [NL:0] inner;  // inner[i]: every loop inside loop i is in its last pass, so loop i moves on this step
  logic [NL:0] sel;  // select(last), kept as a register: it picks the next address without a priority chain
  logic [AW-1:0] base[NL];  // first word of the current pass of loop i, bank included; base[0] is read next
  logic [AW-1:0] nxt;
  logic take, wlast, advance, emit;

  assign in_ready = !full[wbank];
  assign take = in_valid && in_ready;
  assign wlast = waddr == (wbank ? AW'(DEPTH - 1) : AW'(WORDS - 1));
  assign advance = !out_valid || out_ready;
  assign emit = advance && full[rbank];

  assign inner[0] = 1'b1;
  for (genvar i = 0; i < NL; i++) begin : g_inner
    assign inner[i+1] = inner[i] && last[i];
  end
  always_comb begin
    // The loop that steps moves on by its stride; after the frame's last word, the other bank's first word.
    nxt = sel[NL] ? (rbank ? '0 : AW'(WORDS)) : '0;
    for (int i = 0; i < NL; i++) nxt = nxt | (sel[i] ? base[i] + AW'(LOOP_S[i]) : '0);
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      waddr <= '0;
      wbank <= 1'b0;
      rbank <= 1'b0;
      full <= '0;
      out_valid <= 1'b0;
      for (int i = 0; i < NL; i++) begin
        cnt[i] <= '0;
        base[i] <= '0;
      end
      last <= last_init();
      sel <= select(last_init());
    end else begin
      logic [1:0] f;
      logic [NL-1:0] ln;  // last, as it becomes
      f = full;
      if (take) begin
        waddr <= (waddr == AW'(DEPTH - 1)) ? '0 : waddr + 1'b1;
        if (wlast) begin
          f[wbank] = 1'b1;
          wbank <= !wbank;
        end
      end
      if (advance) out_valid <= 1'b0;
      if (emit) begin
        out_valid <= 1'b1;
        ln = last;
        for (int i = 0; i < NL; i++) begin
          if (inner[i]) begin
            base[i] <= nxt;
            cnt[i] <= last[i] ? '0 : cnt[i] + 1'b1;
            ln[i] = last[i] ? (LOOP_N[i] == 1) : (cnt[i] == CW'(LOOP_N[i] - 2));
          end
        end
        last <= ln;
        sel <= select(ln);
        if (sel[NL]) begin
          f[rbank] = 1'b0;
          rbank <= !rbank;
        end
      end
      full <= f;
    end
  end

  // One copy of the frame buffer per read port, written alike: each is a simple dual-port block RAM.
  for (genvar k = 0; k < KP; k++) begin : g_port
    logic [WIDTH-1:0] mem[DEPTH];
    always_ff @(posedge clk) begin
      if (take) mem[waddr] <= in_data;
      if (emit) out_data[k*WIDTH+:WIDTH] <= mem[base[0]+AW'(koff(k))];
    end
  end
endmodule
