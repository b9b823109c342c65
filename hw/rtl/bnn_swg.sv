// Sliding-window generator (convolution input generator): buffers whole H x W x C frames, two banks so that one
// frame is written while the previous one is read, and emits for every output pixel (oy, ox) the window
// elements in (ky, kx, c) order (FINN's im2col order), SIMD channels per word. PAR = 1 (FINN's parallel_window,
// which needs SIMD = C) emits a whole KH x KW x C window per word.
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
    parameter bit PAR = 1'b0
) (
    input  logic                 clk,
    input  logic                 rst_n,
    input  logic [SIMD*BITS-1:0] in_data,
    input  logic                 in_valid,
    output logic                 in_ready,
    output logic [(PAR ? KH*KW : 1)*SIMD*BITS-1:0] out_data,
    output logic                 out_valid,
    input  logic                 out_ready
);
  localparam int CF = C / SIMD;
  localparam int WORDS = H * W * CF;
  localparam int AW = $clog2(2 * WORDS);

  logic [SIMD*BITS-1:0] mem[2*WORDS];
  logic [1:0] full;
  logic wbank, rbank;
  int widx;
  int oy, ox, ky, kx, cf;
  logic advance, emit, last_word;
  int raddr;

  assign in_ready = !full[wbank];
  assign advance = !out_valid || out_ready;
  assign emit = advance && full[rbank];
  assign last_word = (cf == CF - 1) && (PAR || ((kx == KW - 1) && (ky == KH - 1))) && (ox == OW - 1) && (oy == OH - 1);
  assign raddr = (rbank ? WORDS : 0) + ((oy * SH + ky * DH) * W + (ox * SW + kx * DW)) * CF + cf;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      full <= '0;
      wbank <= 1'b0;
      rbank <= 1'b0;
      widx <= 0;
      oy <= 0;
      ox <= 0;
      ky <= 0;
      kx <= 0;
      cf <= 0;
      out_valid <= 1'b0;
    end else begin
      logic [1:0] f;
      f = full;
      if (in_valid && in_ready) begin
        mem[AW'((wbank ? WORDS : 0) + widx)] <= in_data;
        if (widx == WORDS - 1) begin
          widx <= 0;
          f[wbank] = 1'b1;
          wbank <= !wbank;
        end else begin
          widx <= widx + 1;
        end
      end
      if (advance) out_valid <= 1'b0;
      if (emit) begin
        if (PAR) begin
          for (int y = 0; y < KH; y++)
            for (int x = 0; x < KW; x++)
              out_data[(y*KW+x)*SIMD*BITS+:SIMD*BITS] <=
                  mem[AW'((rbank ? WORDS : 0) + ((oy * SH + y * DH) * W + (ox * SW + x * DW)) * CF + cf)];
        end else begin
          out_data[SIMD*BITS-1:0] <= mem[AW'(raddr)];
        end
        out_valid <= 1'b1;
        if (last_word) begin
          f[rbank] = 1'b0;
          rbank <= !rbank;
        end
        if (cf != CF - 1) cf <= cf + 1;
        else begin
          cf <= 0;
          if (PAR) begin
            if (ox != OW - 1) ox <= ox + 1;
            else begin
              ox <= 0;
              oy <= (oy != OH - 1) ? oy + 1 : 0;
            end
          end else if (kx != KW - 1) kx <= kx + 1;
          else begin
            kx <= 0;
            if (ky != KH - 1) ky <= ky + 1;
            else begin
              ky <= 0;
              if (ox != OW - 1) ox <= ox + 1;
              else begin
                ox <= 0;
                oy <= (oy != OH - 1) ? oy + 1 : 0;
              end
            end
          end
        end
      end
      full <= f;
    end
  end
endmodule
