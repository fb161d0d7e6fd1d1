package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestShippedConfig loads the repository's config.yaml, the one that runs out
// of the box (CONTRACT §1, §8), and checks it is valid and says what the
// contract says.
func TestShippedConfig(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{
		"wechat-merchant.pem", "wechat-platform.pub.pem", "alipay-app.pem",
		"alipay-platform.pub.pem", "bank-merchant.pem", "bank-root-ca.pem",
	} {
		if _, err := os.Stat(filepath.Join(root, "sandbox", "keys", k)); err != nil {
			t.Fatalf("sandbox test key %s is missing: the shipped config cannot start without it: %v", k, err)
		}
	}
	cfg, err := Load(filepath.Join(root, "config.yaml"))
	if err != nil {
		t.Fatalf("shipped config.yaml:\n%v", err)
	}
	m := cfg.Merchants[0]
	secret, _ := m.Key.ResolveSecret()
	webhook, _ := m.ResolveWebhookSecret()
	token, _ := cfg.Server.ResolveAdminToken()
	apiv3, _ := cfg.Channels[0].Credentials.ResolveAPIv3Key()
	ids := []string{}
	for _, ch := range cfg.Channels {
		ids = append(ids, ch.ID+"="+ch.Type+"@"+ch.BaseURL)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"sandbox", cfg.Sandbox.Enabled, true},
		{"embedded store", len(cfg.Store.Redis.Addrs), 0},
		{"listen", cfg.Server.Listen, ":8080"},
		{"admin_listen", cfg.Server.AdminListen, "127.0.0.1:9090"},
		{"public_url", cfg.Server.PublicURL, "http://127.0.0.1:8080"},
		{"admin token", token, "sandbox-admin-token"},
		{"merchant", m.ID + " " + m.Key.Algorithm, "demo hmac-sha256"},
		{"merchant secret", secret, "sandbox-demo-secret-0123456789abcdef"},
		{"webhook secret", webhook, "sandbox-demo-webhook-secret-0123456789"},
		{"notify_allow_networks", m.NotifyAllowNetworks, []string{"127.0.0.0/8", "::1/128"}},
		{"methods", m.Methods, []string{"qr", "wechat_native", "wechat_jsapi", "alipay_qr", "alipay_page", "bank_redirect"}},
		{"limits", m.Limits, Limits{MaxAmount: 5000000, RequestsPerSecond: 500}},
		{"channels", ids, []string{"wechat-main=wechat@http://127.0.0.1:9101", "alipay-main=alipay@http://127.0.0.1:9102",
			"bank-a=bank@http://127.0.0.1:9103", "bank-b=bank@http://127.0.0.1:9104"}},
		{"apiv3 key", apiv3, "sandboxAPIv3key0123456789abcdef0"},
		{"rules", cfg.Routing.Rules, []Rule{
			{Name: "large-to-bank", When: Match{Methods: []string{"qr"}, AmountMin: 500000},
				Channels: []ChannelRef{{ID: "bank-a", Weight: 1}, {ID: "bank-b", Weight: 1}}},
			{Name: "default-qr", When: Match{Methods: []string{"qr"}},
				Channels: []ChannelRef{{ID: "wechat-main", Weight: 60}, {ID: "alipay-main", Weight: 40}}},
		}},
		{"failover", cfg.Routing.Failover.MaxAttempts, 2},
		{"schedule", cfg.Notifications.Schedule, DefaultSchedule()},
		{"control_listen", cfg.Sandbox.ControlListen, "127.0.0.1:9100"},
		{"keys_dir", cfg.Sandbox.KeysDir, filepath.Join(root, "sandbox", "keys")},
		{"auto_pay off", cfg.Sandbox.AutoPay.After, Duration(0)},
		{"time_scale", cfg.Sandbox.TimeScale, 1.0},
		{"timestamp_window", cfg.Security.TimestampWindow.D(), 300 * time.Second},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}
