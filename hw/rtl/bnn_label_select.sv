// Top-1 label selection: consumes LABELS values, PE per cycle, and emits the index of the first maximum
// (the lower index wins ties, as ONNX TopK and FINN's LabelSelect do).
module bnn_label_select #(
    parameter int LABELS = 10,
    parameter int PE = 1,
    parameter int IBITS = 8,
    parameter bit I_SIGNED = 1'b0,
    parameter int OBITS = 4
) (
    input  logic                clk,
    input  logic                rst_n,
    input  logic [PE*IBITS-1:0] in_data,
    input  logic                in_valid,
    output logic                in_ready,
    output logic [   OBITS-1:0] out_data,
    output logic                out_valid,
    input  logic                out_ready
);
  localparam int NF = LABELS / PE;
  localparam int NFW = (NF > 1) ? $clog2(NF) : 1;
  localparam int VW = IBITS + 1;

  logic [NFW-1:0] fold;
  logic signed [VW-1:0] best;
  logic [OBITS-1:0] best_idx;

  assign in_ready = !out_valid || out_ready;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      fold <= '0;
      out_valid <= 1'b0;
    end else begin
      if (out_valid && out_ready) out_valid <= 1'b0;
      if (in_valid && in_ready) begin
        logic signed [VW-1:0] b;
        logic [OBITS-1:0] bi;
        b  = (fold == '0) ? '0 : best;
        bi = (fold == '0) ? '0 : best_idx;
        for (int p = 0; p < PE; p++) begin
          logic signed [VW-1:0] v;
          v = I_SIGNED ? VW'($signed(in_data[p*IBITS+:IBITS])) : VW'({1'b0, in_data[p*IBITS+:IBITS]});
          if ((fold == '0 && p == 0) || v > b) begin
            b  = v;
            bi = OBITS'(fold * PE + p);
          end
        end
        best <= b;
        best_idx <= bi;
        if (fold == NFW'(NF - 1)) begin
          fold <= '0;
          out_data <= bi;
          out_valid <= 1'b1;
        end else begin
          fold <= fold + 1'b1;
        end
      end
    end
  end
endmodule
