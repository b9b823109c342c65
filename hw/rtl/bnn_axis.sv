// AXI4-Stream wrapper of bnn_top for an AXI DMA: one accelerator word per stream beat, TDATA rounded up to
// whole bytes (IN_BYTES/OUT_BYTES may be raised to the DMA's power-of-two stream width), TLAST on the last
// word of every output frame so that each S2MM transfer ends with a frame.
module bnn_axis #(
    parameter int IN_W = 8,  // bits of one bnn_top input word
    parameter int OUT_W = 8,  // bits of one bnn_top output word
    parameter int OUT_WORDS = 1,  // output words per frame
    parameter int IN_BYTES = (IN_W + 7) / 8,
    parameter int OUT_BYTES = (OUT_W + 7) / 8
) (
    input  logic                   ap_clk,
    input  logic                   ap_rst_n,
    input  logic [ 8*IN_BYTES-1:0] s_axis_tdata,
    input  logic                   s_axis_tvalid,
    output logic                   s_axis_tready,
    output logic [8*OUT_BYTES-1:0] m_axis_tdata,
    output logic [  OUT_BYTES-1:0] m_axis_tkeep,
    output logic                   m_axis_tvalid,
    input  logic                   m_axis_tready,
    output logic                   m_axis_tlast
);
  if (IN_W < 1 || OUT_W < 1) begin : g_bad_width
    $error("bnn_axis: IN_W (%0d) and OUT_W (%0d) must be at least 1", IN_W, OUT_W);
  end
  if (OUT_WORDS < 1) begin : g_bad_words
    $error("bnn_axis: OUT_WORDS (%0d) must be at least 1", OUT_WORDS);
  end
  if (8 * IN_BYTES < IN_W || 8 * OUT_BYTES < OUT_W) begin : g_bad_bytes
    $error("bnn_axis: IN_BYTES (%0d) / OUT_BYTES (%0d) too small for IN_W (%0d) / OUT_W (%0d)", IN_BYTES,
           OUT_BYTES, IN_W, OUT_W);
  end

  // One count bit even for single-word frames: a zero-width vector is illegal.
  localparam int CW = OUT_WORDS > 1 ? $clog2(OUT_WORDS) : 1;

  logic [OUT_W-1:0] out_data;
  logic [CW-1:0] word;

  bnn_top u_top (
      .clk(ap_clk),
      .rst_n(ap_rst_n),
      .in_data(s_axis_tdata[IN_W-1:0]),  // the padding bits of the last byte are ignored
      .in_valid(s_axis_tvalid),
      .in_ready(s_axis_tready),
      .out_data(out_data),
      .out_valid(m_axis_tvalid),
      .out_ready(m_axis_tready)
  );

  assign m_axis_tdata = (8 * OUT_BYTES)'(out_data);
  // Every byte is a data byte; the DMA's S2MM port has TKEEP, and an explicit one keeps IP integrator from
  // having to tie it off.
  assign m_axis_tkeep = '1;
  assign m_axis_tlast = word == CW'(OUT_WORDS - 1);

  always_ff @(posedge ap_clk) begin
    if (!ap_rst_n) word <= '0;
    else if (m_axis_tvalid && m_axis_tready) word <= m_axis_tlast ? '0 : word + 1'b1;
  end
endmodule
