// Stream data-width converter: IN elements of BITS per input word to OUT elements per output word,
// element order preserved (element 0 in the least significant bits). Whole ratios (OUT a multiple of IN, or IN of
// OUT) collect or split words with a shift register. Any other ratio (g_any) packs through a barrel shifter, with
// a skid buffer first:
// in_ready is then a register, so that the ready chain of the FIFOs on either side ends here instead of running
// through this layer, and the word from the FIFO before (often a block RAM, whose clock-to-out is long) reaches
// the shift into place from a flip-flop. It costs a cycle of latency, no throughput.
module bnn_dwc #(
    parameter int BITS = 1,
    parameter int IN = 1,
    parameter int OUT = 1
) (
    input  logic                clk,
    input  logic                rst_n,
    input  logic [ IN*BITS-1:0] in_data,
    input  logic                in_valid,
    output logic                in_ready,
    output logic [OUT*BITS-1:0] out_data,
    output logic                out_valid,
    input  logic                out_ready
);
  if (BITS < 1 || IN < 1 || OUT < 1) begin : g_bad_shape
    $error("bnn_dwc: BITS (%0d), IN (%0d) and OUT (%0d) must be at least 1", BITS, IN, OUT);
  end

  if (OUT % IN == 0 && OUT > IN) begin : g_up
    // OUT/IN input words make one output word: a shift register collects them (the first word ends in the
    // least significant bits) and the last one completes it into the output register. No barrel shifter.
    localparam int K = OUT / IN;
    localparam int KW = $clog2(K);
    logic [OUT*BITS-1:0] acc;
    logic [KW-1:0] n;
    logic take, last;
    assign last = (n == KW'(K - 1));
    assign in_ready = !last || !out_valid || out_ready;
    assign take = in_valid && in_ready;
    always_ff @(posedge clk) begin
      if (!rst_n) begin
        n <= '0;
        out_valid <= 1'b0;
      end else begin
        if (out_valid && out_ready) out_valid <= 1'b0;
        if (take) begin
          n <= last ? '0 : n + 1'b1;
          if (last) out_valid <= 1'b1;
        end
      end
      if (take) acc <= {in_data, acc[OUT*BITS-1:IN*BITS]};
      if (take && last) out_data <= {in_data, acc[OUT*BITS-1:IN*BITS]};
    end
  end else if (IN % OUT == 0 && IN > OUT) begin : g_down
    // One input word makes IN/OUT output words: held in a register and shifted out, least significant first.
    localparam int K = IN / OUT;
    localparam int KW = $clog2(K);
    logic [IN*BITS-1:0] held;
    logic [KW-1:0] n;  // output words already given from held
    logic give, last;
    assign give = out_valid && out_ready;
    assign last = (n == KW'(K - 1));
    assign in_ready = !out_valid || (give && last);
    assign out_data = held[OUT*BITS-1:0];
    always_ff @(posedge clk) begin
      if (!rst_n) begin
        n <= '0;
        out_valid <= 1'b0;
      end else if (in_valid && in_ready) begin
        held <= in_data;
        n <= '0;
        out_valid <= 1'b1;
      end else if (give) begin
        held <= held >> (OUT * BITS);
        n <= n + 1'b1;
        if (last) out_valid <= 1'b0;
      end
    end
  end else begin : g_any
  localparam int CAP = IN + OUT;
  localparam int CW = $clog2(2 * CAP + 1);  // room for count + IN before the comparison


  // xq: the word shifted in next; xs: the one that arrived while xq could not move on (in_ready fell a cycle late).
  logic [IN*BITS-1:0] xq, xs;
  logic vq, vs, ready_q;
  logic [CAP*BITS-1:0] held;
  logic [CW-1:0] count;
  logic take, give;
  // Flags of count, kept as registers: with the next FIFO's out_ready arriving late in the cycle, take is then a
  // LUT or two from it, not an adder and a compare. room: xq fits (count + IN <= CAP); room_if_give: it fits if a
  // word leaves now (count - OUT + IN <= CAP).
  logic room, room_if_give;
  logic [CW-1:0] c_next[4];  // count after neither, a give, a take, both: {take, give} selects
  logic [2:0] f_next[4];  // their flags, compared before the select
  logic [CAP*BITS-1:0] put_now, put_after_give;

  function automatic logic [2:0] flags(input logic [CW-1:0] c);
    return {c >= CW'(OUT), c <= CW'(CAP - IN), c <= CW'(CAP + OUT - IN)};
  endfunction

  assign out_data = held[OUT*BITS-1:0];
  assign give = out_valid && out_ready;
  assign take = vq && (give ? room_if_give : room);
  assign ready_q = !vq || take;
  assign in_ready = !vs;
  assign c_next[0] = count;
  assign c_next[1] = count - CW'(OUT);
  assign c_next[2] = count + CW'(IN);
  assign c_next[3] = count - CW'(OUT) + CW'(IN);
  for (genvar i = 0; i < 4; i++) begin : g_flags
    assign f_next[i] = flags(c_next[i]);
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      count <= '0;
      {out_valid, room, room_if_give} <= flags('0);
    end else begin
      count <= c_next[{take, give}];
      {out_valid, room, room_if_give} <= f_next[{take, give}];
    end
  end

  // xq at its place without and with a give; held is zero above its count elements.
  assign put_now = (CAP * BITS)'(xq) << (count * BITS);
  assign put_after_give = (CAP * BITS)'(xq) << ((count - CW'(OUT)) * BITS);

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      vq <= 1'b0;
      vs <= 1'b0;
    end else if (ready_q) begin
      vq <= vs || in_valid;
      vs <= 1'b0;
    end else if (in_valid && !vs) begin
      vs <= 1'b1;
    end
    if (ready_q) xq <= vs ? xs : in_data;
    if (!vs) xs <= in_data;
  end

  always_ff @(posedge clk) begin
    if (!rst_n) held <= '0;
    else if (give) held <= (held >> (OUT * BITS)) | (take ? put_after_give : '0);
    else held <= held | (take ? put_now : '0);
  end
  end
endmodule
