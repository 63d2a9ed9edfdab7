package home

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rainp2p/rainp2p/p2p"
)

func TestInitRefusesToOverwriteAnyHomeFile(t *testing.T) {
	for _, existing := range []string{KeyFile, ConfigFile, GenesisFile} {
		t.Run("refuses when "+existing+" exists", func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, existing)
			if err := os.WriteFile(path, []byte("precious\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Init(dir, p2p.DefaultNetworkID, DefaultConfig(), nil)
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want an error naming %s", err, path)
			}
			if b, _ := os.ReadFile(path); string(b) != "precious\n" {
				t.Fatalf("%s was overwritten: %q", existing, b)
			}
			for _, other := range []string{KeyFile, ConfigFile, GenesisFile} {
				if other == existing {
					continue
				}
				if _, err := os.Stat(filepath.Join(dir, other)); err == nil {
					t.Fatalf("a refused Init still wrote %s", other)
				}
			}
		})
	}
}

func TestWriteNewJSONNeverReplacesAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.json")
	if err := writeNewJSON(path, map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	if err := writeNewJSON(path, map[string]int{"a": 2}); err == nil {
		t.Fatal("writeNewJSON replaced an existing file")
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), `"a": 1`) {
		t.Fatalf("file changed: %s", b)
	}
}
