package catalog

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the catalog in docs/reliability.md from what the product does")

// sighting is one place where a user sees what became of a malformed input,
// and the message there.
type sighting struct {
	where   string
	message string
}

// Where a user sees a message.
const (
	atSchema    = "admission: API server, CRD schema"
	atSize      = "admission: API server, size limit"
	atWebhook   = "admission: webhook"
	atWarning   = "admission warning (created)"
	atRunFailed = "condition `LastRunSucceeded`=False; Event `RunFailed`"
	atRunOK     = "condition `LastRunSucceeded`=True; Event `RunSucceeded`"
	atStarted   = "Event `RunStarted`"
	atWaiting   = "condition `WaitingForReferences`=True"
	// Without the webhook (it fails open), the controller refuses what
	// the webhook would have.
	atNoWebhook = "without the webhook: " + atRunFailed
	// The persister's log: kubectl logs POD -c output-persist.
	atLog = "persister log"
)

// atOutputEvent is where the output endpoint reports a problem: an Event of
// the reason on the QuarksJob, and the run's record in its status.
func atOutputEvent(reason string) string {
	return "Event `" + reason + "`; `status.lastRun.uploads[].problems`"
}

// matches compares what was seen with what a case wants. A wanted message
// ending in "…" is a prefix.
func matches(got, want []sighting) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		prefix, isPrefix := strings.CutSuffix(want[i].message, "…")
		if got[i].where != want[i].where ||
			(isPrefix && !strings.HasPrefix(got[i].message, prefix)) ||
			(!isPrefix && got[i].message != want[i].message) {
			return false
		}
	}
	return true
}

func checkSightings(t *testing.T, got, want []sighting) {
	t.Helper()
	if !matches(got, want) {
		t.Errorf("a user sees\n%s\nwant\n%s", describe(got), describe(want))
	}
}

func describe(seen []sighting) string {
	var b strings.Builder
	for _, s := range seen {
		fmt.Fprintf(&b, "  {%q, %q},\n", s.where, s.message)
	}
	return b.String()
}

// entry is one row group of the catalog: an input and every place it is
// seen.
type entry struct {
	input string
	seen  []sighting
}

// TestCatalog runs every malformed input through the product and checks
// what a user sees. The manifests run twice: with the webhook, then, for
// those the webhook refuses, without it (it fails open), where the
// controller must refuse them instead.
func TestCatalog(t *testing.T) {
	manifests := make([]entry, len(manifestCases))
	t.Run("manifests", func(t *testing.T) {
		for i, c := range manifestCases {
			t.Run(c.input, func(t *testing.T) {
				t.Parallel()
				seen := c.observe(t)
				want, _ := c.expected()
				checkSightings(t, seen, want)
				manifests[i] = entry{c.input, seen}
			})
		}
	})
	outputs := make([]entry, len(outputCases))
	t.Run("outputs", func(t *testing.T) {
		for i, c := range outputCases {
			t.Run(c.input, func(t *testing.T) {
				t.Parallel()
				seen := c.observe(t)
				checkSightings(t, seen, c.want)
				outputs[i] = entry{c.input, seen}
			})
		}
	})
	if !hook.running() {
		t.Fatalf("the webhook exited:\n%s", hook.log.String())
	}

	if err := hook.stop(); err != nil {
		t.Fatal(err)
	}
	t.Run("manifests without the webhook", func(t *testing.T) {
		for i, c := range manifestCases {
			_, want := c.expected()
			if want == nil {
				continue
			}
			t.Run(c.input, func(t *testing.T) {
				t.Parallel()
				seen := c.observe(t)
				for i := range seen {
					if seen[i].where == atRunFailed {
						seen[i].where = atNoWebhook
					}
				}
				checkSightings(t, seen, want)
				manifests[i].seen = append(manifests[i].seen, seen...)
			})
		}
	})
	// Whatever was created, the controller still runs a good QuarksJob.
	t.Run("a good QuarksJob after them all", func(t *testing.T) {
		c := manifestCase{input: "good"}
		checkSightings(t, c.observe(t), []sighting{{atStarted, "run 1 started Job gen-1 (trigger Once)"}})
	})
	select {
	case err := <-managerDone:
		t.Fatalf("the controller stopped: %v", err)
	default:
	}
	if t.Failed() {
		return // the table would hold the failures' partial records
	}
	checkDoc(t, render(manifests, outputs))
}

// The catalog's section of docs/reliability.md lies between these markers.
const (
	beginMarker = "<!-- catalog:begin -->"
	endMarker   = "<!-- catalog:end -->"
)

var docPath = filepath.Join(repo, "docs", "reliability.md")

// checkDoc compares the catalog in the doc with table, or with -update
// writes it there.
func checkDoc(t *testing.T, table string) {
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	begin, end := bytes.Index(doc, []byte(beginMarker)), bytes.Index(doc, []byte(endMarker))
	if begin < 0 || end < begin {
		t.Fatalf("%s has no section between %s and %s", docPath, beginMarker, endMarker)
	}
	current := string(doc[begin+len(beginMarker) : end])
	want := "\n" + table
	if current == want {
		return
	}
	if *update {
		updated := append(append(append([]byte{}, doc[:begin+len(beginMarker)]...), want...), doc[end:]...)
		if err := os.WriteFile(docPath, updated, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the catalog in %s", docPath)
		return
	}
	t.Errorf("the catalog in %s is not what the product does; run `make catalog` and commit. It should read:\n%s", docPath, want)
}

// render writes the catalog's tables.
func render(manifests, outputs []entry) string {
	var b strings.Builder
	table := func(title string, entries []entry) {
		fmt.Fprintf(&b, "### %s\n\n| Input | Where the user sees it | Message |\n|---|---|---|\n", title)
		for _, e := range entries {
			for i, s := range e.seen {
				input := e.input
				if i > 0 {
					input = ""
				}
				fmt.Fprintf(&b, "| %s | %s | %s |\n", cell(input), cell(s.where), code(s.message))
			}
		}
		b.WriteString("\n")
	}
	table("QuarksJob manifests", manifests)
	table("Output files", outputs)
	return b.String()
}

// cell makes text fit in a table cell.
func cell(text string) string {
	return strings.ReplaceAll(strings.ReplaceAll(text, "\n", " "), "|", `\|`)
}

// code shows a message verbatim in a table cell.
func code(message string) string {
	if message == "" {
		return ""
	}
	fence := "`"
	for strings.Contains(message, fence) {
		fence += "`"
	}
	pad := ""
	if strings.HasPrefix(message, "`") || strings.HasSuffix(message, "`") {
		pad = " "
	}
	return fence + pad + cell(message) + pad + fence
}
