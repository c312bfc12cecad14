package publish_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsSnippetIsTheExample holds the Go snippet of the publishing guide
// to the runnable Example, which CI compiles and runs: every line of a Go
// block of the docs that calls publish.NewPublisher stands in
// example_test.go, so the snippet cannot drift from an API that compiles.
func TestDocsSnippetIsTheExample(t *testing.T) {
	example, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(example), "\n") {
		have[strings.TrimSpace(l)] = true
	}
	docs, _ := filepath.Glob("../../docs/*.md")
	docs = append(docs, "../../README.md")
	block := regexp.MustCompile("(?s)```go\n(.*?)```")
	found := 0
	for _, path := range docs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range block.FindAllStringSubmatch(string(b), -1) {
			if !strings.Contains(m[1], "publish.NewPublisher(") {
				continue
			}
			found++
			for _, l := range strings.Split(m[1], "\n") {
				if l = strings.TrimSpace(l); l != "" && !have[l] {
					t.Errorf("%s: snippet line not in example_test.go:\n\t%s", path, l)
				}
			}
		}
	}
	if found == 0 {
		t.Fatal("no Go snippet calling publish.NewPublisher in README.md or docs/")
	}
}
