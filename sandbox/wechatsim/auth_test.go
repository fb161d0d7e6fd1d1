package wechatsim

import (
	"strings"
	"testing"
)

func TestParseAuthorization(t *testing.T) {
	t.Parallel()
	want := authorization{MchID: "1900000001", Nonce: "n0nce", Timestamp: "1554208460", SerialNo: "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C", Signature: "c2lnbmF0dXJl+/=="}
	tests := []struct {
		name   string
		header string
		ok     bool
	}{
		{"SDK order", `WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="n0nce",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="c2lnbmF0dXJl+/=="`, true},
		{"Java utility order", `WECHATPAY2-SHA256-RSA2048 mchid="1900000001",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",timestamp="1554208460",nonce_str="n0nce",signature="c2lnbmF0dXJl+/=="`, true},
		{"spaces around commas", `WECHATPAY2-SHA256-RSA2048  signature="c2lnbmF0dXJl+/==" , mchid="1900000001",  nonce_str="n0nce",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C" `, true},
		{"unknown key ignored", `WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="n0nce",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="c2lnbmF0dXJl+/==",extra="x,y"`, true},
		{"empty", ``, false},
		{"other scheme", `WECHATPAY2-SM2-WITH-SM3 mchid="1900000001",nonce_str="n0nce",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="c2lnbmF0dXJl+/=="`, false},
		{"scheme glued to params", `WECHATPAY2-SHA256-RSA2048mchid="1900000001",nonce_str="n0nce",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="c2lnbmF0dXJl+/=="`, false},
		{"missing signature", `WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="n0nce",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C"`, false},
		{"empty mchid", `WECHATPAY2-SHA256-RSA2048 mchid="",nonce_str="n0nce",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="c2lnbmF0dXJl+/=="`, false},
		{"duplicate key", `WECHATPAY2-SHA256-RSA2048 mchid="1900000001",mchid="1900000002",nonce_str="n0nce",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="c2lnbmF0dXJl+/=="`, false},
		{"unquoted value", `WECHATPAY2-SHA256-RSA2048 mchid=1900000001,nonce_str="n0nce",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="c2lnbmF0dXJl+/=="`, false},
		{"unterminated value", `WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="n0nce",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="c2lnbmF0dXJl+/==`, false},
		{"no comma", `WECHATPAY2-SHA256-RSA2048 mchid="1900000001" nonce_str="n0nce",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="c2lnbmF0dXJl+/=="`, false},
		{"trailing comma", `WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="n0nce",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",signature="c2lnbmF0dXJl+/==",`, false},
		{"too long", `WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="` + strings.Repeat("n", maxAuthorizationLen) + `",timestamp="1",serial_no="1",signature="1"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseAuthorization(tt.header)
			if (err == nil) != tt.ok {
				t.Fatalf("parseAuthorization: err = %v, want ok = %v", err, tt.ok)
			}
			if tt.ok && got != want {
				t.Errorf("parsed %+v, want %+v", got, want)
			}
		})
	}
}

// FuzzParseAuthorization: never panics; whatever parses has every required
// field and survives a format/parse round trip unchanged.
func FuzzParseAuthorization(f *testing.F) {
	f.Add(`WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="n0nce",timestamp="1554208460",serial_no="1DDE",signature="c2ln"`)
	f.Add(`WECHATPAY2-SHA256-RSA2048 signature="c2ln" , serial_no="1DDE",timestamp="1",nonce_str="n",mchid="m",x=""`)
	f.Add(`WECHATPAY2-SHA256-RSA2048 mchid="`)
	f.Add(`WECHATPAY2-SHA256-RSA2048 ="",`)
	f.Add(``)
	f.Fuzz(func(t *testing.T, h string) {
		a, err := parseAuthorization(h)
		if err != nil {
			return
		}
		if a.MchID == "" || a.Nonce == "" || a.Timestamp == "" || a.SerialNo == "" || a.Signature == "" {
			t.Fatalf("parsed with an empty required field: %+v", a)
		}
		b, err := parseAuthorization(a.String())
		if err != nil || b != a {
			t.Fatalf("round trip of %+v: %+v, %v", a, b, err)
		}
	})
}
