// Stream FIFO of DEPTH words (DEPTH >= 2) plus a registered output word, full throughput. The output comes
// from a register, not from a read port, so the consumer's logic starts at a flip-flop.
// Storage: up to SHIFT_MAX words, a shift register whose words all move on a write (one clock enable for the
// whole FIFO: iCE40 logic blocks share their enable, and Xilinx parts map it to SRL shift registers); deeper
// FIFOs, a memory read synchronously, which maps to block RAM.
module bnn_fifo #(
    parameter int WIDTH = 8,
    parameter int DEPTH = 2,
    parameter int SHIFT_MAX = 16
) (
    input  logic             clk,
    input  logic             rst_n,
    input  logic [WIDTH-1:0] in_data,
    input  logic             in_valid,
    output logic             in_ready,
    output logic [WIDTH-1:0] out_data,
    output logic             out_valid,
    input  logic             out_ready
);
  if (DEPTH < 2) $error("bnn_fifo: DEPTH (%0d) must be at least 2", DEPTH);
  if (WIDTH < 1) $error("bnn_fifo: WIDTH (%0d) must be at least 1", WIDTH);
  localparam int AW = $clog2(DEPTH);
  logic [AW:0] count, count_next;
  logic push, load;

  assign push = in_valid && in_ready;
  assign load = (count != '0) && (!out_valid || out_ready);  // storage -> output register
  assign count_next = count + (AW + 1)'(push) - (AW + 1)'(load);

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      count <= '0;
      out_valid <= 1'b0;
      in_ready <= 1'b1;
    end else begin
      if (load) out_valid <= 1'b1;
      else if (out_ready) out_valid <= 1'b0;
      count <= count_next;
      // Registered, so the producer's stall starts at a flip-flop; from compares of `count` with constants
      // rather than from count_next, to keep the consumer's ready off the adder.
      if (push && !load) in_ready <= (count != (AW + 1)'(DEPTH - 1));
      else if (load && !push) in_ready <= 1'b1;
    end
  end

  if (DEPTH <= SHIFT_MAX) begin : g_shift
    // Word 0 is the newest; the oldest is word count-1, whose index is kept in a register of its own so that
    // the read multiplexer's select comes straight from flip-flops.
    logic [WIDTH-1:0] sr[DEPTH];
    logic [AW-1:0] oldest;
    always_ff @(posedge clk) begin
      if (!rst_n) oldest <= '1;
      else if (push && !load) oldest <= oldest + 1'b1;
      else if (load && !push) oldest <= oldest - 1'b1;
    end
    always_ff @(posedge clk) begin
      if (push) begin
        sr[0] <= in_data;
        for (int i = 1; i < DEPTH; i++) sr[i] <= sr[i-1];
      end
      if (load) out_data <= sr[oldest];
    end
  end else begin : g_ram
    (* ram_style = "block" *) logic [WIDTH-1:0] mem[DEPTH];
    logic [AW-1:0] rd, wr;
    always_ff @(posedge clk) begin
      if (!rst_n) begin
        rd <= '0;
        wr <= '0;
      end else begin
        if (push) wr <= (wr == AW'(DEPTH - 1)) ? '0 : wr + 1'b1;
        if (load) rd <= (rd == AW'(DEPTH - 1)) ? '0 : rd + 1'b1;
      end
    end
    always_ff @(posedge clk) begin
      if (push) mem[wr] <= in_data;
      if (load) out_data <= mem[rd];
    end
  end
endmodule
