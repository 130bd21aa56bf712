package main

import (
	"strings"
	"testing"
)

// TestAttackSESRegionNotAHost: the SES endpoint is built from the region
// (email.REGION.amazonaws.com), so a gateway URL whose region would put
// another host in it, or carries more than a region, is refused at start
// naming RELAY_GATEWAY (or RELAY_ROUTES).
func TestAttackSESRegionNotAHost(t *testing.T) {
	for _, gw := range []string{
		"ses://us-east-1.evil.example", "ses://evil.example/", "ses://us-east-1:443", "ses://user@us-east-1",
		"ses://us-east-1/path", "ses://us-east-1?x=1", "ses://us-east-1#f", "ses://US-EAST-1", "ses://us%2Deast-1",
		"ses://[::1]", "ses://127.0.0.1", "ses://-us-east-1", "ses://us_east_1", "ses://us-east-1%00.evil",
	} {
		t.Run(gw, func(t *testing.T) {
			sesEnv(t, "", "us-east-1")
			t.Setenv("RELAY_GATEWAY", gw)
			_, err := loadConfig()
			if err == nil {
				t.Fatalf("%s accepted", gw)
			}
			if !strings.Contains(err.Error(), "RELAY_GATEWAY") {
				t.Errorf("error names no RELAY_GATEWAY: %v", err)
			}
		})
	}
}
