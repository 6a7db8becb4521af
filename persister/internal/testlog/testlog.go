// Package testlog holds what the module's tests share: a log sink their
// goroutines may write to while the test reads it.
package testlog

import (
	"bytes"
	"sync"
)

// Buffer is a log sink safe for concurrent writers and readers.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
