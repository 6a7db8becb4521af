// Command crdenum restricts string fields in a generated CustomResourceDefinition's schema to a
// list of values, for fields that controller-gen markers cannot reach.
//
//	crdenum FILE FIELD=VALUE[,VALUE...]...
//
// FIELD is the field's path in the custom resource, e.g.
// spec.template.spec.template.spec.restartPolicy. The QuarksJob's template is
// a batch/v1 JobTemplateSpec from another module, so no marker can restrict
// its pods' restartPolicy; a CEL rule on the spec that reaches down to it
// costs every QuarksJob write about 6 % more API server time than an enum on
// the field itself (BenchmarkWriteCost), and the enum's error names the field
// and the allowed values. `make generate` runs it after controller-gen.
package main

import (
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: crdenum FILE FIELD=VALUE[,VALUE...]...")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "crdenum:", err)
		os.Exit(1)
	}
}

func run(file string, restrictions []string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	crd := map[string]any{}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	versions, _ := lookup(crd, "spec", "versions").([]any)
	if len(versions) == 0 {
		return fmt.Errorf("%s: no spec.versions: not a CustomResourceDefinition", file)
	}
	for _, r := range restrictions {
		field, values, ok := strings.Cut(r, "=")
		if !ok || field == "" || values == "" {
			return fmt.Errorf("%q: want FIELD=VALUE[,VALUE...]", r)
		}
		enum := []any{}
		for _, v := range strings.Split(values, ",") {
			enum = append(enum, v)
		}
		for _, version := range versions {
			schema, _ := lookup(version, "schema", "openAPIV3Schema").(map[string]any)
			for _, name := range strings.Split(field, ".") {
				schema, _ = lookup(schema, "properties", name).(map[string]any)
			}
			if schema == nil || schema["type"] != "string" {
				return fmt.Errorf("%s: version %v has no string field %s", file, lookup(version, "name"), field)
			}
			schema["enum"] = enum
		}
	}
	out, err := yaml.Marshal(crd)
	if err != nil {
		return err
	}
	// controller-gen starts its documents with a separator.
	return os.WriteFile(file, append([]byte("---\n"), out...), 0o644)
}

// lookup follows keys through nested maps; nil when one is missing.
func lookup(node any, keys ...string) any {
	for _, k := range keys {
		m, ok := node.(map[string]any)
		if !ok {
			return nil
		}
		node = m[k]
	}
	return node
}
