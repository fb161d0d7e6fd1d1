package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// outsideRef matches a reference to material a user who clones the
// repository does not have: the project's working notes beside it.
var outsideRef = regexp.MustCompile(`\.\./shared|CONTRACT(\.md| §)|PROTOCOLS(\.md| §)`)

// docsStillCiting lists documents allowed to cite outside material: none.
// It may only shrink: an entry whose file no longer cites anything outside
// fails the test, so that it is removed.
var docsStillCiting = map[string]bool{}

// TestDocsStandAlone: the README and docs/ must stand alone; they never
// refer to files outside the repository.
func TestDocsStandAlone(t *testing.T) {
	root := filepath.Join("..", "..")
	var files []string
	files = append(files, "README.md")
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found only %v: wrong root?", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		refs := outsideRef.FindAllString(string(b), -1)
		switch {
		case len(refs) > 0 && !docsStillCiting[f]:
			t.Errorf("%s refers outside the repository: %q", f, refs)
		case len(refs) == 0 && docsStillCiting[f]:
			t.Errorf("%s no longer refers outside the repository: remove it from docsStillCiting", f)
		}
	}
}
