// Self-checking harness for a board: streams FRAMES test images from a ROM through the accelerator (bnn_top),
// compares every output word with the expected one and each frame's class with its label, and reports a
// pass/fail, the count of correct predictions on LEDs, and a line on a UART:
//   "bnnflow PASS correct 0009 of 0010 exact 0010\r\n"   (decimal counts)
// The class of a frame is its single output value when the accelerator ends in label selection (LABEL_OUT),
// else the index of its largest output element (the first one on ties).
module bnn_selftest #(
    parameter int IN_W = 8,
    parameter int IN_WORDS = 1,  // words per input frame
    parameter int OUT_BITS = 8,
    parameter int OUT_ELEMS = 1,  // elements per output word
    parameter int OUT_WORDS = 1,  // words per output frame
    parameter bit OUT_SIGNED = 1'b0,
    parameter bit LABEL_OUT = 1'b1,
    parameter int FRAMES = 1,
    parameter int EXPECT_CORRECT = 0,  // correct predictions of the reference; PASS needs this many and all exact
    parameter int CLASS_BITS = 8,
    parameter IMAGES_FILE = "",
    parameter EXPECTED_FILE = "",
    parameter LABELS_FILE = "",
    parameter int CLKS_PER_BIT = 434,
    parameter int REPEAT_CYCLES = 50000000,  // the UART line is sent again this often
    parameter int LEDS = 8
) (
    input  logic            clk,
    input  logic            rst_n,
    output logic [LEDS-1:0] led,  // led[0] pass, led[1] fail, led[2+] the correct count's low bits
    output logic            uart_tx,
    output logic            done,
    output logic            pass,
    output logic [    15:0] correct,
    output logic [    15:0] exact
);
  localparam int OUT_W = OUT_BITS * OUT_ELEMS;
  localparam int NIN = FRAMES * IN_WORDS;
  localparam int NOUT = FRAMES * OUT_WORDS;
  localparam int IAW = $clog2(NIN + 1);
  localparam int OAW = $clog2(NOUT + 1);
  localparam int FW = $clog2(FRAMES + 1);
  localparam int OWW = $clog2(OUT_WORDS + 1);
  localparam int MSG = 46;
  if (FRAMES < 1 || FRAMES > 9999) $error("bnn_selftest: FRAMES (%0d) must be 1 to 9999", FRAMES);
  if (LEDS < 2) $error("bnn_selftest: LEDS (%0d) must be at least 2", LEDS);
  if (LABEL_OUT && OUT_ELEMS * OUT_WORDS != 1) $error("bnn_selftest: LABEL_OUT needs one output value per frame");

  (* rom_style = "block" *) logic [IN_W-1:0] images[NIN];
  logic [OUT_W-1:0] expected[NOUT];  // small: in logic, where the compare after it does not wait for a block RAM
  logic [CLASS_BITS-1:0] labels[FRAMES];
  initial begin
    $readmemh(IMAGES_FILE, images);
    $readmemh(EXPECTED_FILE, expected);
    $readmemh(LABELS_FILE, labels);
  end

  // Input: the image ROM (a block RAM) feeds a queue of three flip-flop words whose head drives the accelerator.
  // A read is issued on registered state only (room in the queue), never on the accelerator's in_ready, and the
  // accelerator's first layer starts at a flip-flop, not at the block RAM's slow output: each of those paths
  // was the whole board's critical path when the ROM read went straight into the first layer. Three words keep
  // one word per cycle flowing: one at the head, one on the ROM's output, one being read.
  logic [IAW-1:0] iaddr;
  logic [IN_W-1:0] rom_q;
  logic rom_v;  // rom_q holds the word read the cycle before, to be queued now
  logic [IN_W-1:0] q0, q1, q2;  // the queue, q0 its head
  logic [1:0] n;  // words in the queue
  logic issue, pop;
  logic [IN_W-1:0] in_data;
  logic in_valid, in_ready;
  // Room for the word read now counts it, the one on the ROM's output and the queue as it was (pops ignored).
  assign issue = iaddr != IAW'(NIN) && {1'b0, n} + {2'b0, rom_v} < 3'd3;
  assign pop = in_valid && in_ready;
  assign in_valid = n != 2'd0;
  assign in_data = q0;

  always_ff @(posedge clk) if (issue) rom_q <= images[iaddr];  // no reset: block RAM

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      iaddr <= '0;
      rom_v <= 1'b0;
      n <= 2'd0;
    end else begin
      rom_v <= issue;
      if (issue) iaddr <= iaddr + 1'b1;
      n <= n - {1'b0, pop} + {1'b0, rom_v};
    end
  end

  // After a pop the words move down one place; the word from the ROM goes to the first free place (writing it
  // into the free places above that is harmless: they are not counted in n).
  always_ff @(posedge clk) begin
    if (pop) begin
      q0 <= (n > 2'd1) ? q1 : rom_q;
      q1 <= (n > 2'd2) ? q2 : rom_q;
      q2 <= rom_q;
    end else begin
      if (n == 2'd0) q0 <= rom_q;
      if (n <= 2'd1) q1 <= rom_q;
      if (n <= 2'd2) q2 <= rom_q;
    end
  end

  logic [OUT_W-1:0] out_data;
  logic out_valid;
  bnn_top u_top (
      .clk(clk),
      .rst_n(rst_n),
      .in_data(in_data),
      .in_valid(in_valid),
      .in_ready(in_ready),
      .out_data(out_data),
      .out_valid(out_valid),
      .out_ready(1'b1)
  );

  // Output, registered first so that the checks below start at flip-flops: the expected word for the next
  // output is always read ahead, and a frame's class is compared with its label one cycle after its last word.
  logic [OUT_W-1:0] r_data;
  logic r_valid;
  always_ff @(posedge clk) begin
    r_data <= out_data;
    r_valid <= rst_n && out_valid;
  end

  logic [OAW-1:0] oaddr;
  logic [OUT_W-1:0] want;
  logic take;
  assign take = r_valid && !done;
  always_ff @(posedge clk) want <= expected[take ? oaddr + 1'b1 : oaddr];

  // The class of the frame so far: its best element and where it is.
  logic signed [OUT_BITS:0] best, best_next;
  logic [CLASS_BITS-1:0] best_at, best_at_next;
  logic [OWW-1:0] oword;
  logic [FW-1:0] frame, frame_b;
  logic frame_exact;
  always_comb begin
    best_next = best;
    best_at_next = best_at;
    for (int e = 0; e < OUT_ELEMS; e++) begin
      logic signed [OUT_BITS:0] v;
      v = OUT_SIGNED ? {r_data[e*OUT_BITS+OUT_BITS-1], r_data[e*OUT_BITS+:OUT_BITS]}
                     : {1'b0, r_data[e*OUT_BITS+:OUT_BITS]};
      if ((oword == '0 && e == 0) || v > best_next) begin
        best_next = v;
        best_at_next = CLASS_BITS'(oword * OUT_ELEMS + e);
      end
    end
  end

  function automatic logic [15:0] bcd_inc(input logic [15:0] x);
    logic [15:0] r;
    logic carry;
    r = x;
    carry = 1'b1;
    for (int d = 0; d < 4; d++) begin
      if (carry) begin
        if (r[d*4+:4] == 4'd9) r[d*4+:4] = 4'd0;
        else begin
          r[d*4+:4] = r[d*4+:4] + 4'd1;
          carry = 1'b0;
        end
      end
    end
    return r;
  endfunction

  logic [15:0] correct_bcd, exact_bcd;
  logic [CLASS_BITS-1:0] cls, cls_b;
  logic end_b, exact_b;
  assign cls = LABEL_OUT ? CLASS_BITS'(r_data[OUT_BITS-1:0]) : best_at_next;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      oaddr <= '0;
      oword <= '0;
      frame <= '0;
      frame_exact <= 1'b1;
      end_b <= 1'b0;
    end else begin
      end_b <= 1'b0;
      if (take) begin
        best <= best_next;
        best_at <= best_at_next;
        oaddr <= oaddr + 1'b1;
        if (oword == OWW'(OUT_WORDS - 1)) begin
          oword <= '0;
          frame <= frame + 1'b1;
          frame_exact <= 1'b1;
          end_b <= 1'b1;
          exact_b <= frame_exact && r_data == want;
          cls_b <= cls;
          frame_b <= frame;
        end else begin
          oword <= oword + 1'b1;
          if (r_data != want) frame_exact <= 1'b0;
        end
      end
    end
  end

  // The label compare and the counters are a stage each: the counters' carry logic starts at flip-flops.
  logic end_c, exact_c, hit_c, last_c;
  always_ff @(posedge clk) begin
    end_c <= rst_n && end_b;
    exact_c <= exact_b;
    hit_c <= (cls_b == labels[frame_b]);
    last_c <= (frame_b == FW'(FRAMES - 1));
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      correct <= '0;
      exact <= '0;
      correct_bcd <= '0;
      exact_bcd <= '0;
      done <= 1'b0;
    end else if (end_c) begin
      if (exact_c) begin
        exact <= exact + 1'b1;
        exact_bcd <= bcd_inc(exact_bcd);
      end
      if (hit_c) begin
        correct <= correct + 1'b1;
        correct_bcd <= bcd_inc(correct_bcd);
      end
      if (last_c) done <= 1'b1;
    end
  end

  always_ff @(posedge clk) pass <= rst_n && done && exact == 16'(FRAMES) && correct == 16'(EXPECT_CORRECT);
  always_comb begin
    led = '0;
    led[0] = pass;
    led[1] = done && !pass;
    for (int i = 2; i < LEDS; i++) led[i] = (i - 2 < 16) ? correct[i-2] : 1'b0;
  end

  // The report line, sent when done and again every REPEAT_CYCLES.
  // Character ch of the line: a constant, or one of the 12 decimal digits (correct, frames, exact) or the
  // verdict. Chosen in two registered steps, what kind of character first, then the character.
  function automatic logic [11:0] layout(input int i);  // {kind: 0 text, 1 digit, 2 verdict; digit or letter, char}
    case (i)
      0: return {2'd0, 2'd0, "b"};
      1: return {2'd0, 2'd0, "n"};
      2: return {2'd0, 2'd0, "n"};
      3: return {2'd0, 2'd0, "f"};
      4: return {2'd0, 2'd0, "l"};
      5: return {2'd0, 2'd0, "o"};
      6: return {2'd0, 2'd0, "w"};
      8: return {2'd2, 2'd0, 8'h00};
      9: return {2'd2, 2'd1, 8'h00};
      10: return {2'd2, 2'd2, 8'h00};
      11: return {2'd2, 2'd3, 8'h00};
      13: return {2'd0, 2'd0, "c"};
      14: return {2'd0, 2'd0, "o"};
      15: return {2'd0, 2'd0, "r"};
      16: return {2'd0, 2'd0, "r"};
      17: return {2'd0, 2'd0, "e"};
      18: return {2'd0, 2'd0, "c"};
      19: return {2'd0, 2'd0, "t"};
      21, 22, 23, 24: return {2'd1, 2'd0, 8'(i - 21)};
      26: return {2'd0, 2'd0, "o"};
      27: return {2'd0, 2'd0, "f"};
      29, 30, 31, 32: return {2'd1, 2'd0, 8'(i - 25)};
      34: return {2'd0, 2'd0, "e"};
      35: return {2'd0, 2'd0, "x"};
      36: return {2'd0, 2'd0, "a"};
      37: return {2'd0, 2'd0, "c"};
      38: return {2'd0, 2'd0, "t"};
      40, 41, 42, 43: return {2'd1, 2'd0, 8'(i - 32)};
      44: return {2'd0, 2'd0, 8'h0d};
      45: return {2'd0, 2'd0, 8'h0a};
      default: return {2'd0, 2'd0, " "};
    endcase
  endfunction
  localparam logic [15:0] FRAMES_BCD = 16'(((FRAMES / 1000) % 10) << 12 | ((FRAMES / 100) % 10) << 8 |
                                            ((FRAMES / 10) % 10) << 4 | (FRAMES % 10));
  logic [47:0] digits;  // the 12 digits, most significant of each number first, digit 0 in the top nibble
  assign digits = {correct_bcd, FRAMES_BCD, exact_bcd};

  logic [5:0] ch;
  logic sending, tx_ready;
  logic [$clog2(REPEAT_CYCLES + 1)-1:0] wait_count;
  always_ff @(posedge clk) begin
    if (!rst_n) begin
      ch <= '0;
      sending <= 1'b0;
      wait_count <= '0;
    end else if (sending) begin
      if (tx_ready) begin
        if (ch == 6'(MSG - 1)) begin
          sending <= 1'b0;
          ch <= '0;
        end else begin
          ch <= ch + 1'b1;
        end
      end
    end else if (done) begin
      if (wait_count == $bits(wait_count)'(3)) sending <= 1'b1;  // pass and the first character have settled
      wait_count <= (wait_count == $bits(wait_count)'(REPEAT_CYCLES - 1)) ? '0 : wait_count + 1'b1;
    end
  end

  // The character is registered twice: the transmitter takes it at least CLKS_PER_BIT cycles after `ch` moved on.
  localparam logic [31:0] PASS_TEXT = "PASS", FAIL_TEXT = "FAIL";
  logic [11:0] kind_q;
  logic [7:0] char_q;
  // The layout as a ROM read synchronously (a block RAM), so its decoding is no path of its own.
  (* rom_style = "block" *) logic [11:0] layout_rom[64];
  initial for (int i = 0; i < 64; i++) layout_rom[i] = layout(i);
  always_ff @(posedge clk) begin
    kind_q <= layout_rom[ch];
    case (kind_q[11:10])
      2'd1: char_q <= 8'h30 + {4'h0, digits[47-4*kind_q[3:0]-:4]};
      2'd2: char_q <= pass ? PASS_TEXT[31-8*kind_q[9:8]-:8] : FAIL_TEXT[31-8*kind_q[9:8]-:8];
      default: char_q <= kind_q[7:0];
    endcase
  end

  bnn_uart_tx #(
      .CLKS_PER_BIT(CLKS_PER_BIT)
  ) u_uart (
      .clk(clk),
      .rst_n(rst_n),
      .data(char_q),
      .valid(sending),
      .ready(tx_ready),
      .tx(uart_tx)
  );
endmodule
