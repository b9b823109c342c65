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
  (* rom_style = "block" *) logic [OUT_W-1:0] expected[NOUT];
  logic [CLASS_BITS-1:0] labels[FRAMES];
  initial begin
    $readmemh(IMAGES_FILE, images);
    $readmemh(EXPECTED_FILE, expected);
    $readmemh(LABELS_FILE, labels);
  end

  // Input: a registered ROM read, refilled whenever its word is taken.
  logic [IAW-1:0] iaddr;
  logic [IN_W-1:0] in_data;
  logic in_valid, in_ready;
  always_ff @(posedge clk) begin
    if (!rst_n) begin
      iaddr <= '0;
      in_valid <= 1'b0;
    end else if ((!in_valid || in_ready) && iaddr != IAW'(NIN)) begin
      in_data <= images[iaddr];
      in_valid <= 1'b1;
      iaddr <= iaddr + 1'b1;
    end else if (in_ready) begin
      in_valid <= 1'b0;
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

  // Output: the expected word for the next output is always read ahead.
  logic [OAW-1:0] oaddr;
  logic [OUT_W-1:0] want;
  logic take;
  assign take = out_valid && !done;
  always_ff @(posedge clk) want <= expected[take ? oaddr + 1'b1 : oaddr];

  // The class of the frame so far: its best element and where it is.
  logic signed [OUT_BITS:0] best, best_next;
  logic [CLASS_BITS-1:0] best_at, best_at_next;
  logic [OWW-1:0] oword;
  logic [FW-1:0] frame;
  logic frame_exact;
  always_comb begin
    best_next = best;
    best_at_next = best_at;
    for (int e = 0; e < OUT_ELEMS; e++) begin
      logic signed [OUT_BITS:0] v;
      v = OUT_SIGNED ? {out_data[e*OUT_BITS+OUT_BITS-1], out_data[e*OUT_BITS+:OUT_BITS]}
                     : {1'b0, out_data[e*OUT_BITS+:OUT_BITS]};
      if ((oword == '0 && e == 0) || v > best_next) begin
        best_next = v;
        best_at_next = CLASS_BITS'(oword * OUT_ELEMS + e);
      end
    end
  end

  logic [15:0] correct_bcd;
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

  logic [15:0] exact_bcd;
  logic [CLASS_BITS-1:0] cls;
  assign cls = LABEL_OUT ? CLASS_BITS'(out_data[OUT_BITS-1:0]) : best_at_next;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      oaddr <= '0;
      oword <= '0;
      frame <= '0;
      frame_exact <= 1'b1;
      correct <= '0;
      exact <= '0;
      correct_bcd <= '0;
      exact_bcd <= '0;
      done <= 1'b0;
    end else if (take) begin
      best <= best_next;
      best_at <= best_at_next;
      oaddr <= oaddr + 1'b1;
      if (oword == OWW'(OUT_WORDS - 1)) begin
        oword <= '0;
        frame <= frame + 1'b1;
        frame_exact <= 1'b1;
        if (frame_exact && out_data == want) begin
          exact <= exact + 1'b1;
          exact_bcd <= bcd_inc(exact_bcd);
        end
        if (cls == labels[frame]) begin
          correct <= correct + 1'b1;
          correct_bcd <= bcd_inc(correct_bcd);
        end
        if (frame == FW'(FRAMES - 1)) done <= 1'b1;
      end else begin
        oword <= oword + 1'b1;
        if (out_data != want) frame_exact <= 1'b0;
      end
    end
  end

  assign pass = done && exact == 16'(FRAMES) && correct == 16'(EXPECT_CORRECT);
  always_comb begin
    led = '0;
    led[0] = pass;
    led[1] = done && !pass;
    for (int i = 2; i < LEDS; i++) led[i] = (i - 2 < 16) ? correct[i-2] : 1'b0;
  end

  // The report line, sent when done and again every REPEAT_CYCLES.
  localparam logic [15:0] FRAMES_BCD = 16'(((FRAMES / 1000) % 10) << 12 | ((FRAMES / 100) % 10) << 8 |
                                            ((FRAMES / 10) % 10) << 4 | (FRAMES % 10));
  function automatic logic [7:0] digit(input logic [3:0] d);
    return 8'h30 + {4'h0, d};
  endfunction
  function automatic logic [7:0] message(input int i, input logic ok, input logic [15:0] c, input logic [15:0] x);
    case (i)
      0: return "b";
      1: return "n";
      2: return "n";
      3: return "f";
      4: return "l";
      5: return "o";
      6: return "w";
      7: return " ";
      8: return ok ? "P" : "F";
      9: return ok ? "A" : "A";
      10: return ok ? "S" : "I";
      11: return ok ? "S" : "L";
      12: return " ";
      13: return "c";
      14: return "o";
      15: return "r";
      16: return "r";
      17: return "e";
      18: return "c";
      19: return "t";
      20: return " ";
      21: return digit(c[15:12]);
      22: return digit(c[11:8]);
      23: return digit(c[7:4]);
      24: return digit(c[3:0]);
      25: return " ";
      26: return "o";
      27: return "f";
      28: return " ";
      29: return digit(FRAMES_BCD[15:12]);
      30: return digit(FRAMES_BCD[11:8]);
      31: return digit(FRAMES_BCD[7:4]);
      32: return digit(FRAMES_BCD[3:0]);
      33: return " ";
      34: return "e";
      35: return "x";
      36: return "a";
      37: return "c";
      38: return "t";
      39: return " ";
      40: return digit(x[15:12]);
      41: return digit(x[11:8]);
      42: return digit(x[7:4]);
      43: return digit(x[3:0]);
      44: return 8'h0d;
      default: return 8'h0a;
    endcase
  endfunction

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
      if (wait_count == '0) sending <= 1'b1;
      wait_count <= (wait_count == $bits(wait_count)'(REPEAT_CYCLES - 1)) ? '0 : wait_count + 1'b1;
    end
  end

  bnn_uart_tx #(
      .CLKS_PER_BIT(CLKS_PER_BIT)
  ) u_uart (
      .clk(clk),
      .rst_n(rst_n),
      .data(message(int'(ch), pass, correct_bcd, exact_bcd)),
      .valid(sending),
      .ready(tx_ready),
      .tx(uart_tx)
  );
endmodule
