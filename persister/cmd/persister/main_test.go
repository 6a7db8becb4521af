package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/spf13/viper"

	"code.cloudfoundry.org/quarks-job/api/version"
)

func TestParseTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{"25s": 25 * time.Second, "25": 25 * time.Second, " 9 ": 9 * time.Second, "1m": time.Minute, "0s": time.Second, "0": time.Second} { //nolint:gocritic // " 9 " tests that spaces are trimmed
		if got, err := parseTimeout(in); err != nil || got != want {
			t.Errorf("parseTimeout(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "-5s", "-3"} {
		if _, err := parseTimeout(in); err == nil {
			t.Errorf("parseTimeout(%q): want an error", in)
		}
	}
}

func TestVersion(t *testing.T) {
	cmd := command(viper.New())
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--version"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if want := "persister " + version.Get().String() + "\n"; out.String() != want {
		t.Errorf("--version printed %q, want %q", out.String(), want)
	}
}
