// Package console writes what the plugin has to say while it waits: log
// lines and results on standard output, progress on standard error. On a
// terminal, progress is one line redrawn in place with a spinner and the time
// waited; piped, each new state is a plain line of its own.
package console

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Console serializes writes to out and err so that log lines of several
// containers and the progress line never interleave mid-line.
type Console struct {
	mu  sync.Mutex
	out io.Writer
	err io.Writer
	// live is true when err is a terminal: progress is redrawn in place.
	live bool

	status  string
	since   time.Time
	drawn   bool
	frame   int
	stopped chan struct{}
}

// New returns a Console on out and err. Progress is drawn in place when err
// is a terminal.
func New(out, err io.Writer) *Console {
	return &Console{out: out, err: err, live: isTerminal(err)}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Live reports whether progress is drawn in place.
func (c *Console) Live() bool { return c.live }

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// Start redraws the progress line until Stop, on a terminal.
func (c *Console) Start() {
	if !c.live {
		return
	}
	c.stopped = make(chan struct{})
	go func() {
		tick := time.NewTicker(150 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-c.stopped:
				return
			case <-tick.C:
				c.mu.Lock()
				c.frame++
				c.draw()
				c.mu.Unlock()
			}
		}
	}()
}

// Stop clears the progress line and stops redrawing it.
func (c *Console) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clear()
	c.status = ""
	if c.stopped != nil {
		close(c.stopped)
		c.stopped = nil
	}
}

// Progress sets what is being waited for. Piped, a state different from the
// last one is printed as a line on err.
func (c *Console) Progress(format string, args ...any) {
	status := fmt.Sprintf(format, args...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if status == c.status {
		return
	}
	c.status, c.since = status, time.Now()
	if !c.live {
		_, _ = fmt.Fprintln(c.err, status)
		return
	}
	c.draw()
}

// Println writes a line on out, above the progress line.
func (c *Console) Println(format string, args ...any) {
	c.line(c.out, fmt.Sprintf(format, args...))
}

// Note writes a line on err, above the progress line.
func (c *Console) Note(format string, args ...any) {
	c.line(c.err, fmt.Sprintf(format, args...))
}

func (c *Console) line(w io.Writer, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clear()
	_, _ = fmt.Fprintln(w, strings.TrimRight(text, "\n"))
	c.draw()
}

// clear erases the drawn progress line; called with mu held.
func (c *Console) clear() {
	if c.live && c.drawn {
		_, _ = fmt.Fprint(c.err, "\r\033[K")
		c.drawn = false
	}
}

// draw writes the progress line; called with mu held.
func (c *Console) draw() {
	if !c.live || c.status == "" {
		return
	}
	width := 80
	if f, ok := c.err.(*os.File); ok {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 10 {
			width = w
		}
	}
	text := fmt.Sprintf("%s %s (%s)", spinner[c.frame%len(spinner)], c.status, time.Since(c.since).Truncate(time.Second))
	if r := []rune(text); len(r) > width-1 {
		text = string(r[:width-2]) + "…"
	}
	_, _ = fmt.Fprint(c.err, "\r\033[K"+text)
	c.drawn = true
}
