package alipay

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/adapters"
	"github.com/paygate/paygate/payment"
)

func TestFormatYuan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fen  int64
		want string
	}{
		{name: "zero", fen: 0, want: "0.00"},
		{name: "one fen", fen: 1, want: "0.01"},
		{name: "ten fen", fen: 10, want: "0.10"},
		{name: "99 fen", fen: 99, want: "0.99"},
		{name: "one yuan", fen: 100, want: "1.00"},
		{name: "101 fen", fen: 101, want: "1.01"},
		{name: "typical", fen: 8888, want: "88.88"},
		{name: "Alipay maximum", fen: maxAmount, want: "100000000.00"},
		{name: "max int64", fen: math.MaxInt64, want: "92233720368547758.07"},
		{name: "negative", fen: -150, want: "-1.50"},
		{name: "min int64", fen: math.MinInt64, want: "-92233720368547758.08"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := formatYuan(tt.fen); got != tt.want {
				t.Fatalf("formatYuan(%d) = %q, want %q", tt.fen, got, tt.want)
			}
		})
	}
}

func TestParseYuan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{name: "two decimals", in: "88.88", want: 8888},
		{name: "one fen", in: "0.01", want: 1},
		{name: "zero", in: "0.00", want: 0},
		{name: "bare zero", in: "0", want: 0},
		{name: "integer", in: "100", want: 10000},
		{name: "one decimal", in: "1.5", want: 150},
		{name: "Alipay maximum", in: "100000000.00", want: maxAmount},
		{name: "15 digits", in: "999999999999999.99", want: 99999999999999999},
		{name: "16 digits", in: "1000000000000000.00", wantErr: true},
		{name: "three decimals", in: "1.234", wantErr: true},
		{name: "three zero decimals", in: "1.000", wantErr: true},
		{name: "negative", in: "-1", wantErr: true},
		{name: "negative decimal", in: "-0.01", wantErr: true},
		{name: "plus", in: "+1.00", wantErr: true},
		{name: "letters", in: "abc", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "point only", in: ".", wantErr: true},
		{name: "trailing point", in: "1.", wantErr: true},
		{name: "leading point", in: ".50", wantErr: true},
		{name: "leading zero", in: "01.00", wantErr: true},
		{name: "exponent", in: "1e2", wantErr: true},
		{name: "space", in: " 1.00", wantErr: true},
		{name: "trailing space", in: "1.00 ", wantErr: true},
		{name: "two points", in: "1.0.0", wantErr: true},
		{name: "comma", in: "1,00", wantErr: true},
		{name: "letter in fraction", in: "1.0x", wantErr: true},
		{name: "full-width digit", in: "１.00", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseYuan(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseYuan(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("parseYuan(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestYuanRoundTrip(t *testing.T) {
	t.Parallel()
	for _, fen := range []int64{0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 123456, maxAmount - 1, maxAmount, 99999999999999999} {
		got, err := parseYuan(formatYuan(fen))
		if err != nil || got != fen {
			t.Fatalf("parseYuan(formatYuan(%d)) = %d, %v", fen, got, err)
		}
	}
}

// FuzzParseYuan: never panics; whatever it accepts is non-negative and
// formats back to the same value.
func FuzzParseYuan(f *testing.F) {
	for _, s := range []string{"0.01", "88.88", "100", "1.5", "1.234", "-1", "abc", "", "01.00", "999999999999999.99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fen, err := parseYuan(s)
		if err != nil {
			return
		}
		if fen < 0 {
			t.Fatalf("parseYuan(%q) = %d < 0", s, fen)
		}
		back, err := parseYuan(formatYuan(fen))
		if err != nil || back != fen {
			t.Fatalf("round trip of %q: %d → %q → %d, %v", s, fen, formatYuan(fen), back, err)
		}
	})
}

func TestNewPrecreateBiz(t *testing.T) {
	t.Parallel()
	exp := time.Date(2025, 3, 1, 2, 15, 0, 0, time.UTC) // 10:15 in Beijing
	ok := adapters.CreateRequest{OrderNo: "A1b2C3d4E5f6G7h8I9j0K1l2", Method: payment.MethodQR, Amount: 1999,
		Currency: "CNY", Subject: "Coffee", ExpiresAt: exp}
	got, err := newPrecreateBiz(&ok)
	if err != nil {
		t.Fatal(err)
	}
	want := precreateBiz{OutTradeNo: ok.OrderNo, TotalAmount: "19.99", Subject: "Coffee", TimeExpire: "2025-03-01 10:15:00"}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	tests := []struct {
		name   string
		modify func(r *adapters.CreateRequest)
	}{
		{name: "other currency", modify: func(r *adapters.CreateRequest) { r.Currency = "USD" }},
		{name: "zero amount", modify: func(r *adapters.CreateRequest) { r.Amount = 0 }},
		{name: "negative amount", modify: func(r *adapters.CreateRequest) { r.Amount = -1 }},
		{name: "above Alipay maximum", modify: func(r *adapters.CreateRequest) { r.Amount = maxAmount + 1 }},
		{name: "no subject", modify: func(r *adapters.CreateRequest) { r.Subject = "" }},
		{name: "subject too long", modify: func(r *adapters.CreateRequest) { r.Subject = strings.Repeat("咖", 257) }},
		{name: "no order number", modify: func(r *adapters.CreateRequest) { r.OrderNo = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := ok
			tt.modify(&r)
			if _, err := newPrecreateBiz(&r); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestOrderState(t *testing.T) {
	t.Parallel()
	req := &adapters.QueryRequest{OrderNo: "O1", Amount: 1000, Currency: "CNY"}
	tests := []struct {
		name       string
		resp       queryResp
		wantStatus adapters.OrderStatus
		wantRefund int64
		wantErr    bool
	}{
		{name: "waiting", resp: queryResp{OutTradeNo: "O1", TradeStatus: "WAIT_BUYER_PAY", TotalAmount: "10.00"}, wantStatus: adapters.OrderPending},
		{name: "paid", resp: queryResp{OutTradeNo: "O1", TradeStatus: "TRADE_SUCCESS", TotalAmount: "10.00", SendPayDate: "2025-03-01 10:00:00"}, wantStatus: adapters.OrderPaid},
		{name: "finished", resp: queryResp{OutTradeNo: "O1", TradeStatus: "TRADE_FINISHED", TotalAmount: "10.00"}, wantStatus: adapters.OrderPaid},
		{name: "closed unpaid", resp: queryResp{OutTradeNo: "O1", TradeStatus: "TRADE_CLOSED", TotalAmount: "10.00", ReceiptAmount: "0.00", BuyerPayAmount: "0.00"}, wantStatus: adapters.OrderClosed},
		{name: "closed after full refund (pay date)", resp: queryResp{OutTradeNo: "O1", TradeStatus: "TRADE_CLOSED", TotalAmount: "10.00", SendPayDate: "2025-03-01 10:00:00"}, wantStatus: adapters.OrderPaid, wantRefund: 1000},
		{name: "closed after full refund (receipt)", resp: queryResp{OutTradeNo: "O1", TradeStatus: "TRADE_CLOSED", TotalAmount: "10.00", ReceiptAmount: "10.00"}, wantStatus: adapters.OrderPaid, wantRefund: 1000},
		{name: "unknown state", resp: queryResp{OutTradeNo: "O1", TradeStatus: "SOMETHING_NEW", TotalAmount: "10.00"}, wantStatus: adapters.OrderUnknown},
		{name: "other order echoed", resp: queryResp{OutTradeNo: "O2", TradeStatus: "TRADE_SUCCESS", TotalAmount: "10.00"}, wantErr: true},
		{name: "other amount", resp: queryResp{OutTradeNo: "O1", TradeStatus: "TRADE_SUCCESS", TotalAmount: "10.01"}, wantErr: true},
		{name: "malformed amount", resp: queryResp{OutTradeNo: "O1", TradeStatus: "TRADE_SUCCESS", TotalAmount: "10.001"}, wantErr: true},
		{name: "missing amount", resp: queryResp{OutTradeNo: "O1", TradeStatus: "TRADE_SUCCESS"}, wantErr: true},
		{name: "malformed receipt", resp: queryResp{OutTradeNo: "O1", TradeStatus: "TRADE_CLOSED", TotalAmount: "10.00", ReceiptAmount: "x"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, err := orderState(&tt.resp, req)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if st.Status != tt.wantStatus || st.RefundedAmount != tt.wantRefund || st.Amount != 1000 || st.Currency != "CNY" {
				t.Fatalf("got %+v", st)
			}
		})
	}
}

func TestRefundStates(t *testing.T) {
	t.Parallel()
	req := &adapters.RefundRequest{OrderNo: "O1", RefundNo: "R1", Amount: 300, Total: 1000}
	tests := []struct {
		name    string
		sync    *refundResp
		query   *refundQueryResp
		want    adapters.RefundStatus
		wantErr bool
	}{
		{name: "fund moved", sync: &refundResp{OutTradeNo: "O1", FundChange: "Y", RefundFee: "3.00"}, want: adapters.RefundSucceeded},
		{name: "repeat, no fund change", sync: &refundResp{OutTradeNo: "O1", FundChange: "N", RefundFee: "3.00"}, want: adapters.RefundPending},
		{name: "cumulative fee", sync: &refundResp{OutTradeNo: "O1", FundChange: "Y", RefundFee: "10.00"}, want: adapters.RefundSucceeded},
		{name: "fee below this refund", sync: &refundResp{OutTradeNo: "O1", FundChange: "Y", RefundFee: "2.99"}, wantErr: true},
		{name: "fee above payment", sync: &refundResp{OutTradeNo: "O1", FundChange: "Y", RefundFee: "10.01"}, wantErr: true},
		{name: "other order", sync: &refundResp{OutTradeNo: "O2", FundChange: "Y", RefundFee: "3.00"}, wantErr: true},
		{name: "query success", query: &refundQueryResp{OutTradeNo: "O1", OutRequestNo: "R1", RefundAmount: "3.00", TotalAmount: "10.00", RefundStatus: "REFUND_SUCCESS"}, want: adapters.RefundSucceeded},
		{name: "query no status", query: &refundQueryResp{OutTradeNo: "O1"}, want: adapters.RefundNotFound},
		{name: "query unknown status", query: &refundQueryResp{OutTradeNo: "O1", RefundStatus: "REFUND_SOMETHING"}, want: adapters.RefundUnknown},
		{name: "query other amount", query: &refundQueryResp{OutTradeNo: "O1", OutRequestNo: "R1", RefundAmount: "3.01", RefundStatus: "REFUND_SUCCESS"}, wantErr: true},
		{name: "query other total", query: &refundQueryResp{OutTradeNo: "O1", OutRequestNo: "R1", RefundAmount: "3.00", TotalAmount: "9.00", RefundStatus: "REFUND_SUCCESS"}, wantErr: true},
		{name: "query other refund", query: &refundQueryResp{OutTradeNo: "O1", OutRequestNo: "R2", RefundAmount: "3.00", RefundStatus: "REFUND_SUCCESS"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var st *adapters.RefundState
			var err error
			if tt.sync != nil {
				st, err = refundState(tt.sync, req)
			} else {
				st, err = refundQueryState(tt.query, req)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && st.Status != tt.want {
				t.Fatalf("status = %s, want %s", st.Status, tt.want)
			}
		})
	}
}
