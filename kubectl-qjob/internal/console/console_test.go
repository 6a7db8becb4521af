package console

import (
	"bytes"
	"strings"
	"testing"
)

// Piped, each new state is one plain line on err, and lines on out are untouched.
func TestPiped(t *testing.T) {
	var out, err bytes.Buffer
	c := New(&out, &err)
	if c.Live() {
		t.Fatal("a buffer is no terminal")
	}
	c.Start()
	c.Progress("run %d: waiting", 1)
	c.Progress("run %d: waiting", 1) // the same state again prints nothing
	c.Println("[pod/p/main] hello")
	c.Progress("run 1: running")
	c.Stop()
	if got, want := err.String(), "run 1: waiting\nrun 1: running\n"; got != want {
		t.Errorf("err = %q; want %q", got, want)
	}
	if got, want := out.String(), "[pod/p/main] hello\n"; got != want {
		t.Errorf("out = %q; want %q", got, want)
	}
}

// On a terminal, the progress line is redrawn in place: a line written on out first erases it,
// and it is drawn again after; Stop erases it for good.
func TestLive(t *testing.T) {
	var out, err bytes.Buffer
	c := &Console{out: &out, err: &err, live: true}
	c.Progress("run 1: running")
	c.Println("[pod/p/main] hello")
	c.Stop()
	const erase = "\r\033[K"
	got := err.String()
	if strings.Count(got, "run 1: running") != 2 || !strings.HasSuffix(got, erase) || strings.Contains(got, "\n") {
		t.Errorf("err = %q; want the line drawn, erased, drawn again and erased, with no newline", got)
	}
	if out.String() != "[pod/p/main] hello\n" {
		t.Errorf("out = %q", out.String())
	}
}
