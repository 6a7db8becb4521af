package chart_test

import (
	"os"
	"strings"
	"testing"
)

func TestDebugRender(t *testing.T) {
	if os.Getenv("CHART_DEBUG") == "" {
		t.Skip()
	}
	var sets []string
	if s := os.Getenv("CHART_SET"); s != "" {
		sets = strings.Split(s, " ")
	}
	r := render(t, sets...)
	os.WriteFile(os.Getenv("CHART_DEBUG"), []byte(r.manifest+"\n---\n# NOTES\n"+r.notes), 0o644)
}
